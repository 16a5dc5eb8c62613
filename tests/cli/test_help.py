"""Every command says what it does in one line, and `openesd --help` stays light."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
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
    assert {
        "serve",
        "login",
        "txt2img",
        "img2img",
        "train",
        "checkpoints upload",
        "checkpoints import",
        "checkpoints rename",
        "checkpoints rm",
        "endpoints wait",
        "jobs show",
        "datasets upload",
        "trainings stop",
        "tokens create",
        "users rm",
        "roles list",
        "datasets list",
        "datasets show",
        "datasets rm",
        "trainings list",
        "trainings show",
        "trainings rm",
    } <= names
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


def readme_commands() -> list[str]:
    """`openesd …` lines of the README's quick start: its bash blocks and its inline commands (not `a|b`)."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "README.md").read_text()
    section = text[text.index("## Quick start with the CLI") :]
    section = section[: section.index("\n## ", 5)]
    lines = [line for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines()]
    inline = re.findall(r"`(openesd [^`|]+)`", section)
    return [line for line in lines + inline if line.startswith("openesd ")]


def parse(args: list[str]):
    """The command `openesd ARGS` would run and its parsed options, without running it."""
    command = typer.main.get_command(app)
    context = command.make_context("openesd", list(args))
    while hasattr(command, "commands"):
        name, command, rest = command.resolve_command(context, [*context._protected_args, *context.args])
        context = command.make_context(name, rest, parent=context)
    return command


@pytest.mark.parametrize("line", readme_commands())
def test_the_readme_quick_start_commands_parse_as_written(line):
    try:
        parse(shlex.split(line, comments=True)[1:])
    except typer.BadParameter as error:  # the README's example files are not in the repository
        assert "does not exist" in str(error), f"{line}: {error}"


def test_a_readme_command_that_drifted_would_be_caught():
    assert len(readme_commands()) >= 15
    with pytest.raises(Exception, match="No such option: --steps"):
        parse(["train", "--model", "m", "--dataset", "d", "--output-name", "o", "--steps", "3"])
