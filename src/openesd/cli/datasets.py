"""`openesd datasets`: upload a kohya folder, list, show, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from openesd.cli._output import JsonOption, handles_errors, record, table
from openesd.cli import _session

app = typer.Typer(help="Manage training datasets.", no_args_is_help=True)


@app.command(help="Upload a kohya folder (<repeats>_<concept>/ with images and .txt captions) as a dataset.")
@handles_errors
def upload(
    folder: Annotated[
        Path, typer.Argument(help="The folder (10_cat/, or one holding such folders).", exists=True, file_okay=False)
    ],
    name: Annotated[str | None, typer.Option(help="Dataset name [default: from the folder name].")] = None,
    description: Annotated[str, typer.Option(help="A note stored with the dataset.")] = "",
    as_json: JsonOption = False,
) -> None:
    from openesd.cli._progress import step_bar

    datasets = _session.client().datasets
    with step_bar("files", lambda r: r) as progress:
        done = datasets.upload_folder(
            folder, name, description=description, progress=lambda n, total: progress({"step": n, "total_steps": total})
        )
    record(done, as_json=True) if as_json else typer.echo(f"dataset {done['datasetName']} is {done['status']}")


@app.command("list", help="List datasets, newest first.")
@handles_errors
def list_datasets(as_json: JsonOption = False) -> None:
    table(
        _session.client().datasets.list(),
        [
            ("name", "datasetName"),
            ("status", "status"),
            ("location", "s3"),
            ("created", "timestamp"),
            ("description", "description"),
        ],
        as_json=as_json,
    )


@app.command(help="Show a dataset and its files.")
@handles_errors
def show(name: Annotated[str, typer.Argument(help="Dataset name.")], as_json: JsonOption = False) -> None:
    record(_session.client().datasets.get(name), as_json=as_json)


@app.command(help="Remove datasets and their files.")
@handles_errors
def rm(names: Annotated[list[str], typer.Argument(help="Dataset names.")]) -> None:
    _session.client().datasets.delete(names)
    typer.echo(f"removed {', '.join(names)}")
