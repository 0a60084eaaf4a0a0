"""The case store: models, migrations, sessions, case writes, claims, queries, accounts."""
