"""benchmarks/before_after.py: what it reads from the Makefile and the bench scripts, and its verdicts.

The whole comparison (git worktrees, rounds of benchmarks) takes minutes and is not run here;
what it depends on is: the ``demo`` recipe's commands, the JSON the two bench scripts print
(every figure of its table is read from it) and the PASS / BETTER / FAIL rule.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
try:
    import before_after as ba
finally:
    sys.path.pop(0)


def test_the_demo_commands_are_read_from_the_makefile():
    cmds = ba.demo_commands(ROOT / "Makefile")
    # the source policy's year, then the county scheme's (rules/county: check, batch, report)
    assert [c[0] for c in cmds] == ["rules", "batch", "report", "settle", "rules", "batch", "report"]
    assert cmds[5][cmds[5].index("--rules") + 1] == "rules/county"
    batch = cmds[1]
    assert batch[batch.index("-o") + 1] == "out/results-2024.csv"
    settle = cmds[3]                      # the continuation line is part of it
    assert "--ledger" in settle and settle[-2:] == ["--kind", "inpatient"]


@pytest.mark.parametrize(("ratio", "higher_is_better", "expected"), [
    (1.0, False, "PASS"), (1.049, False, "PASS"), (0.951, False, "PASS"),
    (1.051, False, "FAIL"), (0.94, False, "BETTER"),
    (0.949, True, "FAIL"), (1.06, True, "BETTER"), (0.96, True, "PASS"),
])
def test_a_figure_passes_within_the_tolerance_or_better(ratio, higher_is_better, expected):
    assert ba.verdict(ratio, higher_is_better, 0.05) == expected


def test_timestamps_are_masked_and_counted():
    text, n = ba.masked(b"Recorded as ledger row 1 at 2026-12-06T18:23:47.742+00:00.\n")
    assert (text, n) == (b"Recorded as ledger row 1 at <time>.\n", 1)
    assert ba.masked(b"2024-05-03,30000\n") == (b"2024-05-03,30000\n", 0)   # a date is data


def test_module_sizes_count_lines_under_src_medaid():
    sizes = ba.module_sizes(ROOT)
    assert sizes["__init__.py"] == len((ROOT / "src/medaid/__init__.py").read_text(encoding="utf-8").splitlines())
    assert all(name.endswith(".py") and not name.startswith("/") for name in sizes)


def test_every_figure_of_the_table_is_in_the_scripts_json(tmp_path):
    run = [sys.executable]
    batch = json.loads(subprocess.run(
        [*run, str(BENCH / "bench_batch.py"), "--claims", "400", "--workdir", str(tmp_path), "--json"],
        check=True, capture_output=True, text=True).stdout)
    desk = json.loads(subprocess.run(
        [*run, str(BENCH / "bench_desk.py"), "--runs", "2", "--settlements", "5", "--rows", "5", "--json"],
        check=True, capture_output=True, text=True).stdout)
    assert Path(batch["results"]).exists() and batch["claims"] == 400
    side = ba.Side("after", ROOT, "test", batch=[batch], desk=[desk])
    for m in ba.METRICS:
        (value,) = m.get(side)
        assert value > 0, m.name
    s = desk["commands"]["settle"]
    assert s["median_ms"] <= s["p95_ms"] and s["n"] == 2
    text, failed = ba.figures(side, side, 0.05)
    assert failed == 0 and text.count("PASS") == sum(m.judged for m in ba.METRICS)


def test_the_bench_scripts_time_medaid_with_its_bytecode_written(tmp_path, monkeypatch):
    # an installed medaid has its modules compiled (pip does it); a checkout run with
    # PYTHONDONTWRITEBYTECODE (as on the project's machines) would compile them at every start
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    package = tmp_path / "src" / "medaid"
    (package / "batch").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n", encoding="utf-8")
    (package / "batch" / "run.py").write_text("Y = 2\n", encoding="utf-8")
    said = ba.bench_batch_module().compile_bytecode(tmp_path / "src")
    tag = sys.implementation.cache_tag
    assert (package / "__pycache__" / f"__init__.{tag}.pyc").is_file()
    assert (package / "batch" / "__pycache__" / f"run.{tag}.pyc").is_file()
    assert str(package) in said
