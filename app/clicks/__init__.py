"""Clicks: a recipient's request answered with a 302, the click made durable and stored once.

``redirector`` is the route, ``tracking`` decides the destination and spools the click,
``spool`` keeps it on local disk, ``writer`` moves it to the database in batches through
``recording``, which stores it, and ``aggregates``, which keeps the report aggregates in step
(``statements`` holds what their SQL shares); ``devices`` names the device.
"""
