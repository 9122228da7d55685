"""Paintings on hand: the built-ins, each server's stored gallery, painting names in ``!style``, picker and sheet.

May import requests/ (a painting is a request's input), storage/ and ui/; never cogs/ or ops/.
"""
