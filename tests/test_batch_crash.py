"""A batch killed with SIGKILL at any moment leaves no output file, or the previous one intact,
or (if it had finished) the complete new one: never a half-written file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medaid.io.readers import read_results

ROOT = Path(__file__).resolve().parents[1]
N = 200_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("crash") / "claims.csv"
    lines = ["claim_id,person_id,date,self_pay,group,kind,hospital"]
    for i in range(N):
        kind = "inpatient" if i % 3 else "outpatient-special"
        lines.append(f"C{i:07d},P{(i * 7919) % 20011:05d},2024-{i % 12 + 1:02d}-{i % 28 + 1:02d},"
                     f"{(i * 104729) % 4_000_000 / 100:.2f},key,{kind},H{i % 5}")
    p.write_text("\n".join(lines) + "\n")
    return p


def start(src: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "medaid.cli", "batch", str(src), "-o", str(out), "--rules",
         str(ROOT / "rules"), "--json"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def parts(folder: Path, out: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(f".{out.name}.")]


def outcome(out: Path, previous: bytes | None) -> str:
    """'previous', 'absent' or 'complete'; anything else fails the test."""
    if not out.exists():
        assert previous is None, "the previous output was removed"
        return "absent"
    data = out.read_bytes()
    if previous is not None and data == previous:
        return "previous"
    assert read_results(out).height == N, "a partial output file is visible"
    return "complete"


def test_killed_while_writing_the_previous_output_is_intact(big: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    previous = b"claim_id,relief\nOLD,1.00\n"
    out.write_bytes(previous)
    before = out.stat()
    proc = start(big, out)
    deadline = time.monotonic() + 300
    writing = False
    while proc.poll() is None and time.monotonic() < deadline:
        # writing has begun: a temporary file has bytes, or the output itself was touched
        now = out.stat() if out.exists() else None
        touched = now is None or (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns)
        if touched or any(p.stat().st_size > 0 for p in parts(tmp_path, out)):
            os.kill(proc.pid, signal.SIGKILL)
            writing = True
            break
        time.sleep(0.001)
    proc.wait()
    assert writing, "the batch was never seen writing"
    assert outcome(out, previous) in ("previous", "complete")


@pytest.mark.parametrize("delay", [0.3, 1.5, 4.0])
def test_killed_at_any_moment_no_half_written_file(big: Path, tmp_path: Path, delay: float) -> None:
    out = tmp_path / "results.csv"
    proc = start(big, out)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert outcome(out, None) in ("absent", "complete")
