"""`takedown user list|disable|enable|passwd|logout|audit`: accounts from the command line.

Each change is an audit row by `cli:<login>`, as the API's are by the supervisor. An
unknown name, or disabling a disabled user, exits 2 with one line and changes nothing.
"""

from __future__ import annotations

import argparse
import json
import secrets
from typing import Any

from sqlalchemy import select

from workflows.cli.desk import cli_actor, read_password
from workflows.config.settings import Settings
from workflows.core.figures import iso
from workflows.core.throttle import account_key
from workflows.errors import InputError
from workflows.store import accounts, audit, throttle, user_admin
from workflows.store.db import opened_store, transaction, utcnow
from workflows.store.models import User


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one of the account commands named by ARGS.user_command."""
    command = args.user_command
    if command == "list":
        return list_users(settings, args.json)
    if command == "audit":
        return show_audit(settings, args.name, args.limit, args.json)
    accounts.check_name(args.name)  # refuse bad input before the database is touched
    if command == "passwd":
        return set_password(settings, args.name, args.password_file)
    with opened_store(settings) as sessions, transaction(sessions) as session:
        by: dict[str, Any] = {"actor": cli_actor(), "now": utcnow()}
        if command == "disable":
            user_admin.disable(session, args.name, **by)
            said = f"disabled {args.name}: its web sessions ended, its API tokens are refused"
        elif command == "enable":
            user_admin.enable(session, args.name, **by)
            said = f"enabled {args.name}: its API tokens work again, its sign-in is unlocked"
        else:
            ended = user_admin.end_sessions(session, args.name, **by)
            said = f"ended {ended} web session{'s' * (ended != 1)} of {args.name}"
    print(said)
    return 0


def set_password(settings: Settings, name: str, password_file: str | None) -> int:
    """Set NAME's password from the file, or a new random one printed once on the last line."""
    password = read_password(password_file) if password_file else secrets.token_urlsafe(15)
    with opened_store(settings) as sessions, transaction(sessions) as session:
        user_admin.reset_password(session, name, password, actor=cli_actor(), now=utcnow())
    print(f"set the password of {name}; its web sessions ended")
    if not password_file:
        print("the new password, shown once:")
        print(password)
    return 0


def list_users(settings: Settings, as_json: bool) -> int:
    """Print every user: role, whether it can sign in, disabled or locked."""
    now = utcnow()
    with opened_store(settings) as sessions, sessions() as session:
        users = list(session.scalars(select(User).order_by(User.name)))
        states = throttle.states(session, [account_key(u.name) for u in users], now)
    rows = []
    for user in users:
        state = states.get(account_key(user.name))
        rows.append(
            {
                "name": user.name,
                "role": str(user.role),
                "can_sign_in": user.password_hash is not None,
                "disabled_at": iso(user.disabled_at),
                "locked_until": iso(state.locked_until) if state else None,
                "failed_sign_ins": state.failures if state else 0,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':20}  {'role':10}  {'sign-in':7}  state")
    for row in rows:
        sign_in = "yes" if row["can_sign_in"] else "no"
        print(f"{row['name']:20}  {row['role']:10}  {sign_in:7}  {_state(row)}")
    return 0


def _state(row: dict[str, Any]) -> str:
    if row["disabled_at"]:
        return f"disabled since {row['disabled_at']}"
    if row["locked_until"]:
        return f"sign-in locked until {row['locked_until']} ({row['failed_sign_ins']} failures)"
    return "active"


def show_audit(settings: Settings, name: str | None, limit: int, as_json: bool) -> int:
    """Print the audit trail, newest first (about NAME only when given)."""
    if not 1 <= limit <= 100_000:
        raise InputError(f"--limit {limit}: between 1 and 100000")
    with opened_store(settings) as sessions, sessions() as session:
        rows = audit.audit_events(session, subject=name, limit=limit)
    shown = [
        {
            "at": iso(r.at),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "address": r.address,
            "detail": r.detail,
        }
        for r in rows
    ]
    if as_json:
        print(json.dumps(shown, indent=2))
        return 0
    for row in shown:
        detail = json.dumps(row["detail"], sort_keys=True) if row["detail"] else ""
        print(
            f"{row['at']}  {row['actor']:16}  {row['action']:16}  {row['subject'] or '-':16}  "
            f"{row['address'] or '-':16}  {detail}".rstrip()
        )
    return 0
