"""``medaid batch``'s garbage collector (medaid.tuning.command_heap): paused while the command
starts, what is alive then frozen once its rules are loaded, everything handed back when the
command ends (a process that goes on, as these tests' own, keeps its usual collector), and the
heap frozen at the interpreter's exit, after the command's output is written."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medaid.cli import main
from medaid.tuning import command_heap

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = str(ROOT / "examples" / "claims-2024.csv")
RULES = str(ROOT / "rules")


@pytest.mark.parametrize("enabled", [True, False])
def test_paused_while_starting_frozen_once_started_and_handed_back_after(enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with command_heap() as started:
            assert not gc.isenabled() and gc.get_freeze_count() == 0
            kept = [object() for _ in range(3)]  # noqa: F841  (alive when started: frozen)
            started()
            assert gc.isenabled() is enabled and gc.get_freeze_count() > 0
            started()  # a second call changes nothing
            assert gc.isenabled() is enabled
        assert gc.isenabled() is enabled and gc.get_freeze_count() == 0
    finally:
        (gc.enable if was else gc.disable)()


def test_a_command_that_fails_before_it_started_gets_its_collector_back() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), command_heap():
        assert not gc.isenabled()
        raise RuntimeError("the rules were refused")
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_batch_run_in_process_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    r = CliRunner().invoke(main, ["batch", EXAMPLE, "-o", str(tmp_path / "r.csv"), "--rules", RULES])
    assert r.exit_code == 0, r.output
    assert gc.isenabled() and gc.get_freeze_count() == 0
    r = CliRunner().invoke(main, ["batch", EXAMPLE, "-o", str(tmp_path / "r.csv"), "--rules", "no-such-rules"])
    assert r.exit_code != 0  # refused before the rules were loaded
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_heap_is_frozen_at_exit_once_and_only_after_the_commands_output(tmp_path: Path) -> None:
    # the child's first atexit function runs last: it sees what the interpreter's end is left with
    code = f"""
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, "enabled:", gc.isenabled()))
from medaid.cli import main
sys.argv = ["medaid", "batch", {EXAMPLE!r}, "-o", {str(tmp_path / "r.csv")!r}, "--rules", {RULES!r}]
try:
    main()
finally:
    print("after the command, frozen:", gc.get_freeze_count() > 0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "rows read 5000 = settled 5000 + rejected 0" in lines
    assert lines[-2:] == ["after the command, frozen: False", "frozen at exit: True enabled: True"]
