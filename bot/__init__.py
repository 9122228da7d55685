"""The Discord bot (``python -m bot`` or ``nst-bot``; settings in ``.env.example``): ``app``, ``config``, ``__main__``,
with cogs/ on top of requests/, gallery/, ui/, storage/ and ops/ (docs/architecture.md says what each owns)."""
