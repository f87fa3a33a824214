"""Every command of the whole CLI has help text and an example, and ``--help`` works.

Walks ``medaid.cli.main`` recursively, so commands added by any module are covered.
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from medaid.cli import main


def _walk(cmd: click.Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):  # (the top level loads its commands' modules so)
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path + (name,))} is listed but cannot be loaded"
            out.extend(_walk(sub, path + (name,)))
    return out


COMMANDS = _walk(main)


def test_the_desk_commands_are_all_there():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"settle", "quote", "reverse", "history", "rules check", "rules show", "ledger verify"} <= names


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) or "medaid" for p, _ in COMMANDS])
def test_every_command_has_help_and_an_example(path, cmd):
    text = cmd.help or ""
    assert len(text.strip().splitlines()[0]) > 10, "a one-line summary is missing"
    assert "medaid " in text and "Example" in text or (not path and "medaid settle" in text), (
        "the help needs an example command line ('Example:' followed by 'medaid ...')")
    for p in cmd.params:
        if isinstance(p, click.Option) and not p.hidden:
            assert p.help, f"option {p.opts} has no help text"
    r = CliRunner().invoke(main, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage:" in r.output


def test_each_command_module_adds_exactly_the_commands_it_is_listed_for():
    """The top level imports a command's module on first use (``COMMAND_MODULES``): the table
    must name every command each module adds, and only those."""
    from importlib import import_module

    from medaid.cli.app import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        group = click.Group()
        import_module(f"medaid.cli.{module}").register(group)
        assert set(group.commands) == {c for c, m in COMMAND_MODULES.items() if m == module}, module
