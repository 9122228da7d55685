"""The Discord bot: ``python -m bot`` (or ``nst-bot``). See ``.env.example`` for its settings."""
