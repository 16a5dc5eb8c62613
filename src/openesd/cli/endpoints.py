"""`openesd endpoints`: create, list, remove inference endpoints, and wait for one to serve."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli._output import JsonOption, handles_errors, record, table
from openesd.cli import _session

app = typer.Typer(help="Manage inference endpoints (pools of workers).", no_args_is_help=True)

COLUMNS = [
    ("name", "endpoint_name"),
    ("type", "endpoint_type"),
    ("status", "endpoint_status"),
    ("instance type", "instance_type"),
    ("instances", "current_instance_count"),
    ("roles", "owner_group_or_role"),
    ("started", "startTime"),
    ("error", "error"),
]


@app.command(help="Create an endpoint; its name becomes esd-<type>-<NAME>.")
@handles_errors
def create(
    name: Annotated[str | None, typer.Option(help="Short name (≤ 20 chars) [default: from the id].")] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="Real-time instead of Async.")] = False,
    instance_type: Annotated[str, typer.Option(help="Instance type (cpu, gpu, ml.g5.2xlarge, …).")] = "ml.g5.2xlarge",
    count: Annotated[int, typer.Option(help="Instances to start with.")] = 1,
    autoscaling: Annotated[bool, typer.Option(help="Scale with the backlog.")] = False,
    min_instances: Annotated[int | None, typer.Option(help="Autoscaling minimum.")] = None,
    max_instances: Annotated[int | None, typer.Option(help="Autoscaling maximum.")] = None,
    role: Annotated[
        list[str] | None, typer.Option("--role", help="Roles that may use it [default: IT Operator].")
    ] = None,
    preload: Annotated[
        list[str] | None,
        typer.Option("--preload", help="Stable-diffusion checkpoint each instance loads before InService."),
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until it is InService.")] = False,
    as_json: JsonOption = False,
) -> None:
    endpoints = _session.client().endpoints
    created = endpoints.create(
        endpoint_type="Real-time" if realtime else "Async",
        instance_type=instance_type,
        initial_instance_count=count,
        autoscaling=autoscaling,
        roles=role,
        name=name,
        min_instance_number=min_instances,
        max_instance_number=max_instances,
        preload_models=preload,
    )
    if wait:
        created = endpoints.wait_for(created["endpoint_name"])
    record(created, as_json=as_json) if as_json else typer.echo(
        f"endpoint {created['endpoint_name']} is {created['endpoint_status']}"
    )


@app.command("list", help="List endpoints, newest first.")
@handles_errors
def list_endpoints(as_json: JsonOption = False) -> None:
    table(_session.client().endpoints.list(), COLUMNS, as_json=as_json)


@app.command(help="Wait until an endpoint is InService (exit 1 if it fails).")
@handles_errors
def wait(
    name: Annotated[str, typer.Argument(help="Endpoint name (esd-async-x or x).")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800,
) -> None:
    endpoint = _session.client().endpoints.wait_for(name, timeout=timeout)
    typer.echo(f"endpoint {endpoint['endpoint_name']} is {endpoint['endpoint_status']}")


@app.command(help="Remove endpoints (their workers stop).")
@handles_errors
def rm(names: Annotated[list[str], typer.Argument(help="Endpoint names (esd-async-x).")]) -> None:
    _session.client().endpoints.delete(names)
    typer.echo(f"removed {', '.join(names)}")
