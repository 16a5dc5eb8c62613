"""`openesd users`: list, create and remove users."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli._output import JsonOption, emit_json, handles_errors, table
from openesd.cli import _session

app = typer.Typer(help="Manage users.", no_args_is_help=True)


@app.command("list", help="List the users you can see.")
@handles_errors
def list_users(as_json: JsonOption = False) -> None:
    users = _session.client().users.list()
    table(
        users,
        [("user", "username"), ("roles", "roles"), ("creator", "creator"), ("permissions", "permissions")],
        as_json=as_json,
    )


@app.command(help="Create a user, or overwrite one you created.")
@handles_errors
def create(
    username: Annotated[str, typer.Argument(help="The new user's name.")],
    password: Annotated[str, typer.Option(help="Password.", prompt=True, hide_input=True)],
    role: Annotated[list[str] | None, typer.Option("--role", help="Role to give (repeat for several).")] = None,
    as_json: JsonOption = False,
) -> None:
    if not role:
        raise typer.BadParameter("give at least one --role", param_hint="--role")
    _session.client().users.create(username, password, role)
    emit_json({"username": username, "roles": role}) if as_json else typer.echo(f"user {username} created")


@app.command(help="Remove users.")
@handles_errors
def rm(usernames: Annotated[list[str], typer.Argument(help="User names.")]) -> None:
    _session.client().users.delete(usernames)
    typer.echo(f"removed {', '.join(usernames)}")
