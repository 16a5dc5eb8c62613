"""`openesd roles`: list, create and remove roles."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli._output import JsonOption, emit_json, handles_errors, table
from openesd.cli import _session

app = typer.Typer(help="Manage roles and their permissions.", no_args_is_help=True)


@app.command("list", help="List the roles you can see.")
@handles_errors
def list_roles(as_json: JsonOption = False) -> None:
    columns = [("role", "role_name"), ("creator", "creator"), ("permissions", "permissions")]
    table(_session.client().roles.list(), columns, as_json=as_json)


@app.command(help="Create a role, or overwrite one, with permissions like checkpoint:all.")
@handles_errors
def create(
    name: Annotated[str, typer.Argument(help="Role name.")],
    permissions: Annotated[list[str], typer.Argument(help="Permissions, resource:action (e.g. train:all).")],
    as_json: JsonOption = False,
) -> None:
    _session.client().roles.create(name, permissions)
    if as_json:
        emit_json({"role_name": name, "permissions": permissions})
    else:
        typer.echo(f"role {name} created")


@app.command(help="Remove roles (users keep their other roles).")
@handles_errors
def rm(names: Annotated[list[str], typer.Argument(help="Role names.")]) -> None:
    _session.client().roles.delete(names)
    typer.echo(f"removed {', '.join(names)}")
