"""What the bot keeps: the SQLite database (server limits, job journal, gallery rows) and the limits that apply.

May import config and quoting only; every other part may import storage/.
"""
