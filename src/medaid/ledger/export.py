"""The ledger's settlements as a results frame: what ``medaid report --ledger`` reads.

The ledger sits above :mod:`medaid.io` in the flow (rules → claims → engine → ledger/batch →
reports), so the ledger hands its rows to io's one results-frame builder, not the other way
round: the columns, types and checks are those of a results file (docs/report.md, *Input*)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ..errors import Problem
from ..io.results import ResultsError
from ..io.results_frame import frame_from_rows
from .backend import is_url, open_ledger, redact
from .ledger import Ledger


def load_ledger_results(path: str | Path, year: int | None = None) -> pl.DataFrame:
    """Read a ledger's settlements that were not reversed (``Ledger(path).results_rows``:
    dicts with the results columns, money in ``int`` fen, ``date`` as a date or ISO text) as
    the results frame; ``year`` limits them to one benefit year.  Raises
    :class:`medaid.io.results.ResultsError` for a missing file or a value that is not a
    results value (e.g. money that is not ``int`` fen), naming the ledger and the row.  A
    ``postgresql://`` URL is read from the database (:func:`medaid.ledger.open_ledger`)."""
    if is_url(path):
        with open_ledger(path, create=False) as db:
            rows = db.results_rows(year) if year is not None else db.results_rows()
            return frame_from_rows(rows, source=redact(str(path)))
    p = Path(path)
    if not p.is_file():
        raise ResultsError(Problem("no such ledger", source=str(p)))
    ledger = Ledger(p)
    rows = ledger.results_rows(year) if year is not None else ledger.results_rows()
    return frame_from_rows(rows, source=str(p))


__all__ = ["load_ledger_results"]
