"""`openesd jobs`: inference jobs: list, show, cancel, remove."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli._output import JsonOption, handles_errors, record, table
from openesd.cli import _session

app = typer.Typer(help="Inspect, cancel and remove inference jobs.", no_args_is_help=True)

COLUMNS = [
    ("id", "InferenceJobId"),
    ("task", "taskType"),
    ("mode", "inference_type"),
    ("status", "status"),
    ("created", "createTime"),
    ("images", "image_names"),
]


@app.command("list", help="List inference jobs of one task type, newest first.")
@handles_errors
def list_jobs(
    task: Annotated[str, typer.Option(help="txt2img, img2img, extra-single-image, rembg, …")] = "txt2img",
    limit: Annotated[int, typer.Option(help="At most this many.")] = 20,
    status: Annotated[
        str | None, typer.Option(help="Only jobs in this status: created, inprogress, succeed, failed, cancelled.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    table(_session.client().inferences.list(task, limit=limit, status=status), COLUMNS, as_json=as_json)


@app.command(help="Show one job with its status, progress and result URLs.")
@handles_errors
def show(job_id: Annotated[str, typer.Argument(help="Inference job id.")], as_json: JsonOption = False) -> None:
    record(_session.client().inferences.get(job_id), as_json=as_json)


@app.command(help="Cancel a job: a waiting one never starts, a running one stops within one sampling step.")
@handles_errors
def cancel(job_id: Annotated[str, typer.Argument(help="Inference job id.")], as_json: JsonOption = False) -> None:
    job = _session.client().inferences.cancel(job_id)
    if as_json:
        record(job, as_json=True)
    elif job.get("status") == "cancelled":
        typer.echo(f"cancelled {job_id}")
    else:
        typer.echo(f"cancelling {job_id}: its worker stops at its next sampling step")


@app.command(help="Remove jobs and their stored results.")
@handles_errors
def rm(job_ids: Annotated[list[str], typer.Argument(help="Inference job ids.")]) -> None:
    _session.client().inferences.delete(job_ids)
    typer.echo(f"removed {', '.join(job_ids)}")
