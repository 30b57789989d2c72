"""Clicks: a recipient's request answered with a 302, the click made durable and stored once.

``redirector`` is the route, ``tracking`` decides the destination and spools the click,
``spool`` keeps it on local disk, ``writer`` moves it to the database in batches through
``recording``, which also keeps the report aggregates; ``devices`` names the device.
"""
