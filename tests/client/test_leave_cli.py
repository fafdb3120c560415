"""The shape of ``baat.cli.leave``'s commands, as the root command registers them."""

from __future__ import annotations

import io

import click
from click.testing import CliRunner
from rich.console import Console
from rich.progress import Progress

from baat.cli import leave


def test_commands_have_the_names_the_root_registers() -> None:
    assert isinstance(leave.import_, click.Group) and leave.import_.name == "import"
    assert sorted(leave.import_.commands) == ["whatsapp"]
    assert isinstance(leave.export, click.Command) and leave.export.name == "export"
    assert isinstance(leave.backup, click.Group) and leave.backup.name == "backup"
    assert sorted(leave.backup.commands) == ["create", "restore"]


def test_registered_under_a_root_group() -> None:
    root = click.Group("baat")
    for command in (leave.import_, leave.export, leave.backup):
        root.add_command(command)
    runner = CliRunner()
    helped = runner.invoke(root, ["import", "whatsapp", "--help"])
    assert helped.exit_code == 0
    for option in ("--chat", "--me", "--map", "--date-order", "--tz", "--dry-run", "--json"):
        assert option in helped.output
    assert "--out" in runner.invoke(root, ["export", "--help"]).output
    assert "--profile" in runner.invoke(root, ["backup", "restore", "--help"]).output
    wrong = runner.invoke(root, ["import", "whatsapp", "x.txt", "--date-order", "dym"])
    assert wrong.exit_code == 2


def test_progress_bars_follow_each_phase() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with Progress(console=console) as progress:
        bars = leave.Bars(progress)
        bars("parse", 10, 100)
        bars("messages", 0, 50)
        bars("parse", 60, 100)
        tasks = {t.description: t for t in progress.tasks}
        assert tasks["parse"].completed == 60 and tasks["messages"].total == 50
        bars.finish()
        assert all(t.completed == t.total for t in progress.tasks)
    leave.Bars(None)("parse", 1, 2)  # no terminal: nothing to draw, nothing fails
