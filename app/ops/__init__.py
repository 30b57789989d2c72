"""Running Clickmap: the production server and its writer process, schema migrations, and
the demo.
"""
