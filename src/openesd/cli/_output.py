"""Printing for the CLI: Rich tables for people, JSON for scripts, errors as one line and exit code 1."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def handles_errors(command: Callable) -> Callable:
    """Turn SDK errors into `Error: <server message>` on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from openesd.client import ESDError

        try:
            return command(*args, **kwargs)
        except ESDError as exc:
            typer.echo(f"Error: {exc.message}" + (f" (HTTP {exc.status})" if exc.status else ""), err=True)
            raise typer.Exit(1) from None
        except (OSError, ValueError) as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str]], *, as_json: bool, title: str | None = None) -> None:
    """`columns`: (heading, key) pairs; a list value is shown comma-joined, a `created`/`timestamp`
    value in seconds since the epoch (ESD's trainings and datasets) as local time."""
    if as_json:
        emit_json(list(rows))
        return
    from rich.table import Table

    view = Table(title=title)
    for number, (heading, _) in enumerate(columns):
        view.add_column(heading, no_wrap=number == 0)  # the id or name that `show`/`rm` take, never cut
    for row in rows:
        view.add_row(*(_when(row.get(key)) if key in _TIMES else _cell(row.get(key)) for _, key in columns))
    console().print(view)


def record(value: dict, *, as_json: bool) -> None:
    if as_json:
        emit_json(value)
        return
    for key, item in value.items():
        shown = json.dumps(item, default=str) if isinstance(item, (dict, list)) else _cell(item)
        typer.echo(f"{key}: {shown}")


_TIMES = {"created", "timestamp"}


def _when(value: Any) -> str:
    """`1711086305.1` -> `2024-03-22 05:45:05`; any other text (ESD dates of checkpoints) as it is."""
    import datetime

    try:
        return datetime.datetime.fromtimestamp(float(value)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return _cell(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
