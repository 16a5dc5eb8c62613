"""The SDK client the CLI's commands share, built from the stored config and the environment."""

from __future__ import annotations

from openesd.cli import _config


def client():
    from openesd.client import Client, ESDError

    config = _config.load()
    if not config.url or not config.api_key:
        raise ESDError(
            0,
            f"not logged in: run `openesd login --url URL --key KEY` "
            f"(or set OPENESD_URL and OPENESD_API_KEY); config file: {_config.config_path()}",
        )
    return Client(config.url, config.api_key, username=config.user or "api", token=config.token)
