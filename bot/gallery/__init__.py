"""Paintings on hand: the built-ins, each server's stored gallery, painting names in ``!style``, the contact sheet.

May import requests/ (a painting is a request's input) and storage/; never ui/, cogs/ or ops/.
"""
