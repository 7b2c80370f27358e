"""``labelwise user``: accounts, roles, passwords and API tokens, run on the server itself.

Whoever can run this command can open the database, so it acts as the workspace operator: no
sign-in, and it may create the first owner.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from labelwise.cli.output import LabelwiseTyper, console, err_console, workspace_option
from labelwise.errors import ValidationError
from labelwise.workflow import accounts
from labelwise.workflow.accounts import ROLES, AuthPolicy
from labelwise.workspace import open_workspace

app = LabelwiseTyper(help="Users, their roles, passwords and API tokens.", no_args_is_help=True)
tokens = LabelwiseTyper(help="API tokens (Bearer) for scripts and the CLI.", no_args_is_help=True)
app.add_typer(tokens, name="token")

ROLE_HELP = f"Workspace role: {', '.join(ROLES)} (highest first)."


def _password_option():
    return typer.Option(
        None, "--password",
        help="The password (visible in the process list and shell history: prefer the prompt "
        "or --password-stdin).", show_default=False,
    )


def _stdin_option():
    return typer.Option(False, "--password-stdin", help="Read the password from standard input.")


def read_password(password: str | None, from_stdin: bool, *, prompt: str) -> str:
    """The password from the option, the first line of stdin, or a hidden prompt."""
    if password is not None and from_stdin:
        raise ValidationError("give either --password or --password-stdin, not both")
    if password is not None:
        return password
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ValidationError("--password-stdin read nothing; pipe the password in")
        return line
    return typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


@app.command("add")
def add(
    username: str = typer.Argument(..., help="Login name (case-insensitive)."),
    role: str = typer.Option(..., "--role", "-r", help=ROLE_HELP),
    display_name: str = typer.Option("", "--display-name", help="Name shown in the web app."),
    password: str | None = _password_option(),
    password_stdin: bool = _stdin_option(),
    workspace: Path | None = workspace_option(),
) -> None:
    """Add a user; `labelwise user add NAME --role owner` creates the first owner."""
    secret = read_password(password, password_stdin, prompt=f"Password for {username}")
    with open_workspace(workspace) as ws, ws.session() as s:
        user = accounts.create_user(
            s, username, secret, role=role, display_name=display_name,
            policy=AuthPolicy.from_settings(ws.settings),
        )
        console.print(f"[green]user {user.username}[/] added with role {user.role} (id {user.id})")


@app.command("list")
def list_users(workspace: Path | None = workspace_option()) -> None:
    """List users with their roles."""
    with open_workspace(workspace) as ws, ws.session() as s:
        users = accounts.list_users(s)
    if not users:
        console.print("No users yet. Create the first owner with "
                      "[bold]labelwise user add NAME --role owner[/].")
        return
    table = Table("id", "username", "display name", "role", "active", "created")
    for u in users:
        table.add_row(str(u.id), u.username, u.display_name, u.role,
                      "yes" if u.is_active else "no", f"{accounts.as_utc(u.created_at):%Y-%m-%d}")
    console.print(table)


@app.command("set-role")
def set_role(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Argument(..., help=ROLE_HELP),
    workspace: Path | None = workspace_option(),
) -> None:
    """Change a user's workspace role (the last owner keeps theirs)."""
    with open_workspace(workspace) as ws, ws.session() as s:
        user = accounts.set_role(s, username, role)
        console.print(f"[green]user {user.username}[/] now has role {user.role}")


@app.command("deactivate")
def deactivate(
    username: str = typer.Argument(..., help="Login name."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Stop a user signing in: their sessions end, their tokens stop working."""
    with open_workspace(workspace) as ws, ws.session() as s:
        user = accounts.deactivate(s, username)
        console.print(f"[yellow]user {user.username}[/] deactivated (their history stays)")


@app.command("activate")
def activate(
    username: str = typer.Argument(..., help="Login name."),
    workspace: Path | None = workspace_option(),
) -> None:
    """Let a deactivated user sign in again."""
    with open_workspace(workspace) as ws, ws.session() as s:
        user = accounts.reactivate(s, username)
        console.print(f"[green]user {user.username}[/] is active again")


@app.command("passwd")
def passwd(
    username: str = typer.Argument(..., help="Login name."),
    password: str | None = _password_option(),
    password_stdin: bool = _stdin_option(),
    workspace: Path | None = workspace_option(),
) -> None:
    """Set a user's password; their web sessions end (API tokens keep working)."""
    secret = read_password(password, password_stdin, prompt=f"New password for {username}")
    with open_workspace(workspace) as ws, ws.session() as s:
        user = accounts.set_password(
            s, username, secret, policy=AuthPolicy.from_settings(ws.settings)
        )
        console.print(f"[green]password of {user.username}[/] changed; their sessions ended")


def _user_option():
    return typer.Option(..., "--user", "-u", help="Login name of the token's owner.")


@tokens.command("create")
def token_create(
    name: str = typer.Argument(..., help="What uses the token, e.g. 'ci' or 'laptop'."),
    user: str = _user_option(),
    expires_days: int | None = typer.Option(
        None, "--expires-days", help="Lifetime in days (default: until revoked)."
    ),
    workspace: Path | None = workspace_option(),
) -> None:
    """Create an API token and print it once: store it now, it cannot be shown again."""
    with open_workspace(workspace) as ws, ws.session() as s:
        new = accounts.create_token(s, accounts.get_user(s, user), name,
                                    expires_days=expires_days)
        until = "until revoked" if new.row.expires_at is None else (
            f"until {accounts.as_utc(new.row.expires_at):%Y-%m-%d %H:%M} UTC")
    err_console.print(f"API token {name!r} (id {new.row.id}) for {user}, valid {until}. "
                      "Shown once; send it as 'Authorization: Bearer <token>':")
    typer.echo(new.token)


@tokens.command("list")
def token_list(user: str = _user_option(), workspace: Path | None = workspace_option()) -> None:
    """List a user's API tokens (names and first characters, never the tokens)."""
    with open_workspace(workspace) as ws, ws.session() as s:
        owner = accounts.get_user(s, user)
        rows = [accounts.token_public(t) for t in accounts.list_tokens(s, owner)]
    table = Table("id", "name", "starts with", "created", "last used", "expires", "state")
    for t in rows:
        state = "active" if t["active"] else ("revoked" if t["revoked_at"] else "expired")
        table.add_row(str(t["id"]), t["name"], t["prefix"] + "...", _day(t["created_at"]),
                      _day(t["last_used_at"]), _day(t["expires_at"]) or "never", state)
    console.print(table)


@tokens.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., help="Token id (see `labelwise user token list`)."),
    user: str = _user_option(),
    workspace: Path | None = workspace_option(),
) -> None:
    """Revoke an API token: requests using it answer 401 from now on."""
    with open_workspace(workspace) as ws, ws.session() as s:
        row = accounts.revoke_token(s, accounts.get_user(s, user), token_id)
        console.print(f"[yellow]token {row.name!r}[/] ({row.prefix}...) revoked")


def _day(value) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"
