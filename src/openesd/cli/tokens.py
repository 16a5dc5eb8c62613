"""`openesd tokens`: your personal tokens (`Authorization: Bearer oesd_…`)."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli._output import JsonOption, emit_json, handles_errors, table
from openesd.cli import _session

app = typer.Typer(help="Manage your personal tokens.", no_args_is_help=True)


@app.command(help="Create a personal token and print its secret (shown only once).")
@handles_errors
def create(
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "default",
    expires_in_days: Annotated[int | None, typer.Option(help="Days until it expires [default: never].")] = None,
    as_json: JsonOption = False,
) -> None:
    created = _session.client().tokens.create(name, expires_in_days)
    if as_json:
        emit_json(created)
        return
    typer.echo(f"token {created['token']['id']} ({name}) created; secret, shown only now:")
    typer.echo(created["secret"])


@app.command("list", help="List your personal tokens (never their secrets).")
@handles_errors
def list_tokens(as_json: JsonOption = False) -> None:
    columns = [
        ("id", "id"),
        ("name", "name"),
        ("prefix", "prefix"),
        ("created", "created"),
        ("expires", "expires"),
        ("last used", "last_used"),
    ]
    table(_session.client().tokens.list(), columns, as_json=as_json)


@app.command(help="Revoke personal tokens.")
@handles_errors
def rm(token_ids: Annotated[list[str], typer.Argument(help="Token ids.")]) -> None:
    tokens = _session.client().tokens
    for token_id in token_ids:
        tokens.delete(token_id)
    typer.echo(f"revoked {', '.join(token_ids)}")
