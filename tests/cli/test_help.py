"""Every command says what it does in one line, and `openesd --help` stays light."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from openesd.cli.main import app


def all_commands(group, path=()):
    for name, command in group.commands.items():
        yield (*path, name), command
        if hasattr(command, "commands"):  # a sub-app (typer has its own click classes)
            yield from all_commands(command, (*path, name))


def test_every_command_has_a_one_line_help():
    root = typer.main.get_command(app)
    commands = list(all_commands(root))
    names = {" ".join(path) for path, _ in commands}
    assert {"serve", "login", "txt2img", "img2img", "train", "checkpoints upload", "checkpoints import",
            "checkpoints rename", "checkpoints rm", "endpoints wait", "jobs show", "datasets upload",
            "trainings stop", "tokens create", "users rm", "roles list"} <= names
    runner = CliRunner()
    for path, command in commands:
        assert command.help and "\n" not in command.help.strip(), f"openesd {' '.join(path)}: {command.help!r}"
        shown = runner.invoke(app, [*path, "--help"])
        assert shown.exit_code == 0, path
        assert command.help.strip().split()[0] in shown.stdout


def test_help_does_not_import_the_http_client_or_torch():
    code = "import sys, openesd.cli.main; print(sorted(m for m in ('httpx', 'torch', 'diffusers') if m in sys.modules))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
