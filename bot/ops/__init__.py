"""Running the bot: metrics and health, the doctor, graceful shutdown, logs, the invite link.

May import any other part of the bot (it watches them); no other part imports ops/ except ``app`` and ``__main__``.
"""
