"""The `openesd` command: `serve` runs the server; every other command talks to one over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli import checkpoints, datasets, endpoints, generate, jobs, roles, tokens, trainings, users
from openesd.cli.login import login
from openesd.cli.serve import serve

app = typer.Typer(help="OpenESD: the ESD API on your own machines.", no_args_is_help=True)
app.command(help="Run the API server (SQLite, local object store and local workers by default).")(serve)
app.command(help="Check a server URL and API key and store them in the user config.")(login)
app.add_typer(users.app, name="users")
app.add_typer(roles.app, name="roles")
app.add_typer(tokens.app, name="tokens")
app.add_typer(checkpoints.app, name="checkpoints")
app.add_typer(endpoints.app, name="endpoints")
app.command(help="Generate images from a prompt and save them to a folder.")(generate.txt2img)
app.command(help="Generate images from an image and a prompt and save them to a folder.")(generate.img2img)
app.add_typer(jobs.app, name="jobs")
app.add_typer(datasets.app, name="datasets")
app.command(help="Train a LoRA on a dataset and follow its progress.")(trainings.train)
app.add_typer(trainings.app, name="trainings")


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from openesd import __version__

        typer.echo(__version__)
        raise typer.Exit()
