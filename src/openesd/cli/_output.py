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
    """`columns`: (heading, key) pairs; a list value is shown comma-joined."""
    if as_json:
        emit_json(list(rows))
        return
    from rich.table import Table

    view = Table(title=title)
    for heading, _ in columns:
        view.add_column(heading)
    for row in rows:
        view.add_row(*(_cell(row.get(key)) for _, key in columns))
    console().print(view)


def record(value: dict, *, as_json: bool) -> None:
    if as_json:
        emit_json(value)
        return
    for key, item in value.items():
        shown = json.dumps(item, default=str) if isinstance(item, (dict, list)) else _cell(item)
        typer.echo(f"{key}: {shown}")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
