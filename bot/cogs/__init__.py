"""The commands: each cog parses what the user sent, then hands it to a service (thin layer on top).

May import every other part of the bot except ops/; nothing imports cogs/ except ``app``.
"""
