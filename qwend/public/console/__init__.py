"""The web console: its app, static files and request checks."""
