"""`openesd train` and `openesd trainings`: start a LoRA training, follow it, list, stop, remove."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli._output import JsonOption, emit_json, handles_errors, record, table
from openesd.cli._progress import step_bar
from openesd.cli import _session

app = typer.Typer(help="Inspect, stop and remove LoRA trainings.", no_args_is_help=True)

COLUMNS = [("id", "id"), ("status", "status"), ("model", "modelName"), ("created", "created"),
           ("job", "sagemakerTrainName")]


@handles_errors
def train(
    model: Annotated[str, typer.Option(help="Base checkpoint file name (e.g. v1-5-pruned-emaonly.safetensors).")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    output_name: Annotated[str, typer.Option(help="Name of the LoRA to produce (<name>.safetensors).")],
    fm_type: Annotated[str, typer.Option(help="sd_1_5 or sd_xl.")] = "sd_1_5",
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 1,
    steps: Annotated[int | None, typer.Option(help="Stop after this many steps (kohya max_train_steps).")] = None,
    instance_type: Annotated[str, typer.Option(help="Where to train.")] = "ml.g5.2xlarge",
    wait: Annotated[bool, typer.Option(help="Follow the training until it ends.")] = True,
    as_json: JsonOption = False,
) -> None:
    trainings = _session.client().trainings
    created = trainings.create(model, dataset, output_name, fm_type=fm_type, instance_type=instance_type,
                               epochs=epochs, max_train_steps=steps)
    if not wait:
        emit_json(created) if as_json else typer.echo(f"training {created['id']} is {created['status']}")
        return
    with step_bar("training", lambda t: t.get("progress")) as progress:
        done = trainings.wait_for(created["id"], on_update=progress)
    emit_json(done) if as_json else typer.echo(
        f"training {done['id']} {done['job_status']}: LoRA {output_name}.safetensors is ready")


@app.command("list", help="List trainings, newest first.")
@handles_errors
def list_trainings(as_json: JsonOption = False) -> None:
    table(_session.client().trainings.list(), COLUMNS, as_json=as_json)


@app.command(help="Show one training with its status and progress.")
@handles_errors
def show(training_id: Annotated[str, typer.Argument(help="Training id.")], as_json: JsonOption = False) -> None:
    record(_session.client().trainings.get(training_id), as_json=as_json)


@app.command(help="Stop a running training.")
@handles_errors
def stop(training_id: Annotated[str, typer.Argument(help="Training id.")]) -> None:
    _session.client().trainings.stop(training_id)
    typer.echo(f"stopping {training_id}")


@app.command(help="Remove trainings and their files (never the base model).")
@handles_errors
def rm(training_ids: Annotated[list[str], typer.Argument(help="Training ids.")]) -> None:
    _session.client().trainings.delete(training_ids)
    typer.echo(f"removed {', '.join(training_ids)}")
