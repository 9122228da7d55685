"""The request path: one style request from acceptance to delivery (the job service and the steps it runs).

May import storage/, ui.fitting (Discord's text limits) and nst_engine; never Discord's views, the rest of ui/, cogs/ or ops/.
"""
