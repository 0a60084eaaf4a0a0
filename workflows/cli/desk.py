"""The desk's commands: `takedown serve` and `takedown user add|tokens|revoke`."""

from __future__ import annotations

import argparse
from pathlib import Path

from workflows.config.settings import Settings
from workflows.core.figures import iso
from workflows.errors import InputError
from workflows.store import accounts
from workflows.store.db import opened_store, transaction


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run `serve` or `user add|tokens|revoke`."""
    if args.command == "serve":
        return serve(settings, args.host, args.port)
    if args.user_command == "tokens":
        return list_tokens(settings, args.name)
    if args.user_command == "revoke":
        return revoke_token(settings, args.token_id)
    return add_user(settings, args.name, args.role, args.password_file)


def serve(settings: Settings, host: str, port: int) -> int:
    """Migrate the database, then serve the app with uvicorn until stopped."""
    import uvicorn

    from workflows.web.app import create_app

    app = create_app(settings)  # migrates first
    print(f"takedown: the desk is at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    return 0


def add_user(settings: Settings, name: str, role: str, password_file: str | None) -> int:
    """Create a user and print an API token on the last line."""
    accounts.check_name(name)  # refuse bad input before the database is touched
    password = _read_password(password_file) if password_file else None
    with opened_store(settings) as sessions, transaction(sessions) as session:
        user = accounts.create_user(session, name, role, password)
        token = accounts.issue_token(session, user)
    sign_in = "can sign in to the web desk" if password else "API tokens only, no web sign-in"
    print(f"added {role} {name} ({sign_in}); API token, shown once:")
    print(token)
    return 0


def _read_password(path: str) -> str:
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
        accounts.revoke_token(session, token)
    print(f"revoked API token {token_id} of {owner.name}")
    return 0
