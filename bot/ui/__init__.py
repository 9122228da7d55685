"""What Discord shows: embeds and progress text, fitting to Discord's limits, buttons, the painting picker, reporters.

May import requests/, storage/ and gallery/ (the help and the picker name the paintings); never cogs/ or ops/.
"""
