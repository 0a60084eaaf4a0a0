"""The analyst desk: the HTTP API (api.py), the pages (pages.py), sign-in (auth.py)."""
