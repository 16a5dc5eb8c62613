"""`openesd train` and `openesd trainings`: start a LoRA training, follow it, list, stop, remove."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from openesd.cli._output import JsonOption, emit_json, handles_errors, record, table
from openesd.cli._progress import step_bar
from openesd.cli import _session

app = typer.Typer(help="Inspect, stop and remove LoRA trainings.", no_args_is_help=True)

COLUMNS = [("id", "id"), ("status", "status"), ("model", "modelName"), ("created", "created")]


def parse_settings(values: list[str] | None) -> dict[str, dict]:
    """`training.resolution=32,32` -> {"training": {"resolution": "32,32"}}; a bare key goes to `training`.

    A value that reads as JSON (5e-2, false, 4) is that number or boolean; anything else is a string.
    """
    sections: dict[str, dict] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        section, _, name = key.strip().rpartition(".")
        if not sep or not name:
            raise typer.BadParameter(
                f"{value!r} is not KEY=VALUE (e.g. training.resolution=768,768)", param_hint="--set"
            )
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw
        sections.setdefault(section or "training", {})[name] = parsed
    return sections


@handles_errors
def train(
    model: Annotated[str, typer.Option(help="Base checkpoint file name (e.g. v1-5-pruned-emaonly.safetensors).")],
    dataset: Annotated[str, typer.Option(help="Dataset name.")],
    output_name: Annotated[str, typer.Option(help="Name of the LoRA to produce (<name>.safetensors).")],
    fm_type: Annotated[str, typer.Option(help="sd_1_5 or sd_xl.")] = "sd_1_5",
    epochs: Annotated[int, typer.Option(help="Training epochs (kohya max_train_epochs).")] = 1,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A kohya setting, SECTION.KEY=VALUE or KEY=VALUE for [training] "
            "(e.g. --set training.resolution=768,768); repeatable.",
        ),
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="Where to train: cpu, gpu or an ESD type such as ml.g5.2xlarge.")
    ] = "ml.g5.2xlarge",
    wait: Annotated[bool, typer.Option(help="Follow the training until it ends.")] = True,
    as_json: JsonOption = False,
) -> None:
    trainings = _session.client().trainings
    created = trainings.create(
        model,
        dataset,
        output_name,
        fm_type=fm_type,
        instance_type=instance_type,
        epochs=epochs,
        config_params=parse_settings(settings),
    )
    if not wait:
        emit_json(created) if as_json else typer.echo(f"training {created['id']} is {created['status']}")
        return
    typer.echo(f"training {created['id']} started", err=True)
    try:
        with step_bar("training", lambda t: t.get("progress")) as progress:
            done = trainings.wait_for(created["id"], interval=1.0, on_update=progress)
    except KeyboardInterrupt:
        typer.echo(f"the training goes on; `openesd trainings stop {created['id']}` stops it", err=True)
        raise typer.Exit(130) from None
    emit_json(done) if as_json else typer.echo(
        f"training {done['id']} {done['job_status']}: LoRA {output_name}.safetensors is ready"
    )


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


@app.command(help="Remove trainings and their files; the trained LoRA checkpoint and the base model stay.")
@handles_errors
def rm(training_ids: Annotated[list[str], typer.Argument(help="Training ids.")]) -> None:
    _session.client().trainings.delete(training_ids)
    typer.echo(f"removed {', '.join(training_ids)}")
