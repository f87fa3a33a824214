"""A disk that is full for some files: the writers' temporary files (medaid.io.writers.atomic_path)
whose name holds a given text are made links to /dev/full, where every write fails with ENOSPC.
The writers' own error paths run, not a stand-in for them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

#: Skip marker for the tests that need /dev/full (Linux has it).
needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


def full_for(monkeypatch: pytest.MonkeyPatch, holding: str = "") -> None:
    """From now on, a temporary file of the writers whose name holds ``holding`` (every one when
    empty) is on a full disk."""
    from medaid.io import writers

    real = tempfile.mkstemp

    def mkstemp(*args, **kwargs):  # type: ignore[no-untyped-def]
        fd, name = real(*args, **kwargs)
        if holding not in Path(name).name:
            return fd, name
        os.close(fd)
        os.unlink(name)
        os.symlink("/dev/full", name)
        return os.open(name, os.O_WRONLY), name

    monkeypatch.setattr(writers.tempfile, "mkstemp", mkstemp)
