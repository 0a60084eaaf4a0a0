"""Notices: rendering from templates, XARF reports, SMTP out (and mail that comes back)."""
