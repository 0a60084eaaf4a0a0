"""The desk's commands: `takedown serve` and `takedown user add|tokens|revoke` (the
account commands, `user list|disable|enable|passwd|logout|audit`, are in cli/users.py).

The command line acts with the database's own rights: its audit rows name `cli:<login>`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflows.config.settings import Settings
from workflows.core.figures import iso
from workflows.errors import InputError
from workflows.store import accounts, user_admin
from workflows.store.db import opened_store, transaction, utcnow


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `serve` or `user …`."""
    if args.command == "serve":
        return serve(settings, args.host, args.port)
    if args.user_command == "tokens":
        return list_tokens(settings, args.name)
    if args.user_command == "revoke":
        return revoke_token(settings, args.token_id)
    if args.user_command == "add":
        return add_user(settings, args.name, args.role, args.password_file)
    from workflows.cli import users

    return users.run(settings, args)


def cli_actor() -> str:
    """Return the audit actor of the command line: cli:<the login running it>."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # a container user with no passwd entry and no $USER
        return "cli"


def serve(settings: Settings, host: str, port: int) -> int:
    """Serve the app with uvicorn until stopped (SQLite is migrated first)."""
    import uvicorn

    from workflows.engine.logs import uvicorn_log_config
    from workflows.web.app import create_app

    app = create_app(settings)  # migrates SQLite first; refuses an old PostgreSQL schema
    print(f"takedown: the desk is at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    logs = uvicorn_log_config(settings.log_format)  # TAKEDOWN_LOG_FORMAT; no query strings
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False, log_config=logs)
    return 0


def add_user(settings: Settings, name: str, role: str, password_file: str | None) -> int:
    """Create a user and print an API token on the last line."""
    accounts.check_name(name)  # refuse bad input before the database is touched
    password = read_password(password_file) if password_file else None
    with opened_store(settings) as sessions, transaction(sessions) as session:
        _, token = user_admin.add_user(
            session, name, role, password, actor=cli_actor(), now=utcnow()
        )
    sign_in = "can sign in to the web desk" if password else "API tokens only, no web sign-in"
    print(f"added {role} {name} ({sign_in}); API token, shown once:")
    print(token)
    return 0


def read_password(path: str) -> str:
    """Return the first line of PATH if the password policy accepts it."""
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"--password-file: cannot read {path}: {error}") from None
    try:
        return accounts.check_password(lines[0] if lines else "")
    except InputError as error:
        raise InputError(f"--password-file: {error.message}") from None


def list_tokens(settings: Settings, name: str) -> int:
    """Print the user's API tokens: id, created, last used (never a secret)."""
    accounts.check_name(name)
    with opened_store(settings) as sessions, transaction(sessions) as session:
        user = accounts.find_user(session, name)
        if user is None:
            raise InputError(f"no user {name!r}")
        tokens = accounts.api_tokens(session, user)
    print(f"{'id':>6}  {'created':20}  last used")
    for token in tokens:
        print(f"{token.id:>6}  {iso(token.created_at):20}  {iso(token.last_used_at) or 'never'}")
    if not tokens:
        print(f"{name} has no API token")
    return 0


def revoke_token(settings: Settings, token_id: int) -> int:
    """Revoke an API token: the next request that presents it is refused."""
    with opened_store(settings) as sessions, transaction(sessions) as session:
        found = accounts.find_token(session, token_id)
        if found is None:
            raise InputError(f"no API token {token_id}")
        token, owner = found
        user_admin.revoke_token(session, token, owner, actor=cli_actor(), now=utcnow())
    print(f"revoked API token {token_id} of {owner.name}")
    return 0
