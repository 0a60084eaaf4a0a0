"""The `takedown` command line: one module per group of commands."""
