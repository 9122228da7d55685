"""What Discord shows: embeds and progress text, fitting to Discord's limits, buttons, and the reporters.

May import requests/, storage/ and gallery.builtin (the help names the paintings); never cogs/ or ops/.
"""
