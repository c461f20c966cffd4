"""The silent CLI through click's runner on a real SQLite file."""
import json
import pathlib
import re

import click

from web.cli import cli
from web.settings import SETTINGS

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_experiment_lifecycle(runner, tmp_path):
    db = str(tmp_path / "cli.db")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"key": "home-recs", "slots": 2}))
    result = runner.invoke(cli, ["experiments", "create", str(spec), "--db", db])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "draft"
    for command, status in [("start", "running"), ("pause", "paused"), ("start", "running"), ("stop", "stopped")]:
        result = runner.invoke(cli, ["experiments", command, "home-recs", "--db", db])
        assert result.exit_code == 0 and f"now {status}" in result.output
    listing = runner.invoke(cli, ["experiments", "list", "--db", db])
    assert "home-recs" in listing.output and "stopped" in listing.output
    shown = json.loads(runner.invoke(cli, ["experiments", "show", "home-recs", "--db", db]).output)
    assert shown["version"] == 5


def test_cli_errors_are_clear(runner, tmp_path):
    db = str(tmp_path / "cli.db")
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"key": "x", "slots": 0}))
    result = runner.invoke(cli, ["experiments", "create", str(spec), "--db", db])
    assert result.exit_code == 1 and "slots: must be >= 1 [slots]" in result.output
    spec.write_text("{nope")
    assert "not valid JSON" in runner.invoke(cli, ["experiments", "create", str(spec), "--db", db]).output
    result = runner.invoke(cli, ["experiments", "start", "missing", "--db", db])
    assert result.exit_code == 1 and "does not exist" in result.output


def walk(group, prefix=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from walk(command, prefix + (name,))
        else:
            yield prefix + (name,), command


def test_every_command_has_help_with_an_example_and_every_option_is_in_the_cli_reference():
    reference = (ROOT / "docs" / "cli.md").read_text()
    for path, command in walk(cli):
        assert command.help and "Example: silent" in command.help, path
        line = next((line for line in reference.splitlines() if line.startswith(f"silent {' '.join(path)} ")), None)
        assert line, f"silent {' '.join(path)} is not in docs/cli.md"
        for param in command.params:
            if isinstance(param, click.Option):
                assert max(param.opts, key=len) in re.findall(r"--[a-z-]+", line), (path, param.opts)


def test_every_setting_has_help_and_is_in_the_reference():
    readme = (ROOT / "docs" / "cli.md").read_text()
    names = [name for name, _, _ in SETTINGS]
    assert len(names) == len(set(names))
    for name, _, help_text in SETTINGS:
        assert help_text.endswith("."), name
        assert f"SILENT_{name}" in readme, f"setting {name} is not documented in docs/cli.md"
