"""Rich progress bars: bytes for uploads, steps for jobs and trainings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

FINISHED = {"succeed", "Completed"}


@contextmanager
def byte_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A bar with bytes, speed and ETA; yields the (done, total) callback the SDK calls."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from openesd.cli._output import console

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console(stderr=True)) as progress:
        task = progress.add_task(description, total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)


@contextmanager
def step_bar(
    description: str, read: Callable[[dict], dict | None], total: int | None = None
) -> Iterator[Callable[[dict], None]]:
    """A bar fed from a polled record: `read(record)` gives {step, total_steps, ...} or None.

    `total` is the expected step count until the server reports its own (a job may finish between
    two polls, before any step was seen). The ETA shown is the server's (`eta_seconds`), which sees
    every step; the clock column is the time elapsed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from openesd.cli._output import console

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console(stderr=True)) as progress:
        task = progress.add_task(description, total=total, extra="")
        last = [""]

        def update(record: dict) -> None:
            info = read(record) or {}
            status = record.get("status") or record.get("job_status") or ""
            extra = describe(info)
            if info.get("total_steps"):
                progress.update(task, completed=info.get("step") or 0, total=info["total_steps"])
            elif status in FINISHED and progress.tasks[0].total:
                # The last poll has no progress any more: show the bar full rather than empty.
                progress.update(task, completed=progress.tasks[0].total)
            last[0] = extra or last[0]  # keep the last loss/epoch on screen once the job is done
            progress.update(task, extra=f"{status} {last[0]}".strip())

        yield update


def describe(info: dict) -> str:
    """`sampling epoch 1 loss 0.1234 eta 12s` from a progress record; absent fields are left out."""
    words = []
    for key, label in (("phase", ""), ("epoch", "epoch "), ("loss", "loss "), ("eta_seconds", "eta ")):
        value = info.get(key)
        if value is None:
            continue
        if key == "eta_seconds":
            words.append(f"{label}{float(value):.0f}s")
        else:
            words.append(f"{label}{value:.4g}" if isinstance(value, float) else f"{label}{value}")
    return " ".join(words)
