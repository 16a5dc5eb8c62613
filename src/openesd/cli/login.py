"""`openesd login`: check the server and key, then store them in the user config."""

from __future__ import annotations

from typing import Annotated

import typer

from openesd.cli import _config
from openesd.cli._output import handles_errors


@handles_errors
def login(
    url: Annotated[str, typer.Option(help="Server URL, with or without /prod (e.g. http://127.0.0.1:8080).")],
    key: Annotated[str, typer.Option(help="API key (x-api-key).")],
    user: Annotated[str | None, typer.Option(help="User name sent as the `username` header [default: api].")] = None,
    token: Annotated[str | None, typer.Option(help="Personal token (oesd_…) instead of a user name.")] = None,
) -> None:
    from openesd.client import Client

    with Client(url, key, username=user or "api", token=token) as client:
        client.ping()
        who = "token" if token else (user or "api")
        if token or user:
            client.tokens.list()  # proves the identity too; any existing user may list their tokens
    path = _config.save(_config.Config(url=url, api_key=key, user=None if token else user, token=token))
    typer.echo(f"Logged in to {client.base_url} as {who}; settings saved to {path}")
