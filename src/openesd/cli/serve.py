"""`openesd serve`: prepare the data directory, print how to connect, run the API."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.settings import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8080].")] = None,
) -> None:
    import uvicorn

    from openesd.server.app import create_app
    from openesd.server.runtime import boot

    defaults = get_settings()
    settings = defaults.model_copy(update={"host": host or defaults.host, "port": port or defaults.port})
    runtime = boot(settings)
    _banner(settings, runtime)
    uvicorn.run(create_app(settings, runtime), host=settings.host, port=settings.port, log_level="info")


def _banner(settings, runtime) -> None:
    base = f"{settings.base_url}{settings.stage_prefix}"
    typer.echo(f"OpenESD API: {base}")
    typer.echo(f"data directory: {settings.data_dir.resolve()}")
    if runtime.api_key_created:
        typer.echo(f"API key (shown once, kept in {settings.data_dir / 'api_key'}): {runtime.api_keys[0]}")
    elif not settings.api_keys:
        typer.echo(f"API key: in {settings.data_dir / 'api_key'}")
    if settings.console_enabled:
        typer.echo(f"console: {settings.base_url}/console/ (sign in with a user's password: openesd users create)")
    typer.echo(f"try: curl -H 'x-api-key: <key>' {base}/ping")
