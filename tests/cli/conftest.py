"""A real server for the CLI, and `openesd …` run in-process with its own config file."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openesd.cli.main import app
from tests.support.server import API_KEY, start_test_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = start_test_server(tmp_path_factory)
    yield process
    process.stop()


class Cli:
    def __init__(self, runner: CliRunner):
        self.runner = runner

    def __call__(self, *args: str, ok: bool = True):
        result = self.runner.invoke(app, [str(a) for a in args])
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"openesd {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}\n{result.exception!r}"
            )
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def cli(monkeypatch, tmp_path) -> Cli:
    """A CLI with an empty config file of its own and no OPENESD_* variables from outside."""
    for name in ("OPENESD_URL", "OPENESD_API_KEY", "OPENESD_USER", "OPENESD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENESD_CONFIG", str(tmp_path / "config" / "config.toml"))
    return Cli(CliRunner())


@pytest.fixture
def logged_in(cli, server) -> Cli:
    cli("login", "--url", server.base, "--key", API_KEY)
    return cli
