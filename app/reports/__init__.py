"""Reports: the figures (``stats``), the heatmap view and its tiers (``heatmap``), the colored
email (``email_overlay``), charts and the PDF. They read aggregates, take a session and
arguments, and know nothing of requests.
"""
