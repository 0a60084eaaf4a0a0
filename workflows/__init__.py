"""takedown: a notice-and-takedown workflow engine for internet hotlines."""

__version__ = "0.1.0"
