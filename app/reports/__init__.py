"""Reports: the figures (``stats``, read through one ``ClickFilter``), the dashboard's lists
(``listings``), the heatmap view and its tiers (``heatmap``), the colored email
(``email_overlay``), charts, the labels and formats of the shared report template
(``labels``) and the PDF (``pdf``, loading only what ``fetcher`` allows). They read
aggregates, take a session and arguments, and know nothing of requests.
"""
