"""The `openesd` command."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli.serve import serve

app = typer.Typer(help="OpenESD: the ESD API on your own machines.", no_args_is_help=True)
app.command(help="Run the API server (SQLite, local object store and local workers by default).")(serve)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from openesd import __version__

        typer.echo(__version__)
        raise typer.Exit()
