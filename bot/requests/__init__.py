"""The request path: one style request from acceptance to delivery (the job service and the steps it runs).

May import storage/ and nst_engine (besides config and quoting); never ui/, cogs/ or ops/.
"""
