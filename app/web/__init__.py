"""The web surfaces: the JSON API, the dashboard and the report downloads, with the login,
API-token and CSRF checks they share. Requests are parsed here and nowhere else.
"""
