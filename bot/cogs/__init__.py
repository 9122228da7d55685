"""One cog per area: style requests, server limits, help."""
