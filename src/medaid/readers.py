"""TEMPORARY stub of the claim readers (helper ``batchio`` writes the real module).

Implements only the contract of :func:`validate_frame`, row by row through
:func:`medaid.money.parse_yuan`, so that the Spark path can be built before ``batchio`` lands.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from .columns import CLAIM_MONEY_FIELDS, REQUIRED_FIELDS
from .errors import MoneyError
from .money import parse_yuan

if TYPE_CHECKING:
    import polars as pl


def validate_frame(raw: "pl.DataFrame", source: str) -> tuple["pl.DataFrame", "pl.DataFrame"]:
    """Type a frame of text fields (DESIGN.md §2 *Money*, §5 *Reliability*).

    ``raw`` has String columns named by canonical field names plus ``row`` (Int64).  Returns
    ``(clean, rejects)``: clean rows typed (``date`` Date, money Int64 fen, empty optional text
    as null, other columns passed through); rejects ``row, claim_id, field, message``.
    """
    import polars as pl

    cols = [c for c in raw.columns if c != "row"]
    data = {c: raw[c].to_list() for c in cols}
    rows = raw["row"].to_list()
    keep: list[int] = []
    typed: dict[str, list[Any]] = {c: [] for c in cols}
    rej: dict[str, list[Any]] = {"row": [], "claim_id": [], "field": [], "message": []}
    for i, line in enumerate(rows):
        rec = {c: (None if data[c][i] is None or not str(data[c][i]).strip() else data[c][i]) for c in cols}
        problem: tuple[str, str] | None = None
        out: dict[str, Any] = dict(rec)
        for f in REQUIRED_FIELDS:
            if rec.get(f) is None:
                problem = (f, "is empty" if f in cols else "column is missing")
                break
        if problem is None:
            try:
                out["date"] = dt.date.fromisoformat(rec["date"].strip())
            except ValueError:
                problem = ("date", f"{rec['date']!r} is not a date; write YYYY-MM-DD")
        if problem is None:
            for f in CLAIM_MONEY_FIELDS:
                if f in cols and rec[f] is not None:
                    try:
                        out[f] = parse_yuan(rec[f], field=f)
                    except MoneyError as e:
                        problem = (f, e.problems[0].message)
                        break
        if problem is not None:
            rej["row"].append(line)
            rej["claim_id"].append(rec.get("claim_id"))
            rej["field"].append(problem[0])
            rej["message"].append(problem[1])
            continue
        keep.append(i)
        for c in cols:
            typed[c].append(out[c])
    schema: dict[str, Any] = {"row": pl.Int64}
    for c in cols:
        schema[c] = pl.Date if c == "date" else pl.Int64 if c in CLAIM_MONEY_FIELDS else pl.String
    clean = pl.DataFrame({"row": [rows[i] for i in keep], **typed}, schema=schema)
    rejects = pl.DataFrame(rej, schema={"row": pl.Int64, "claim_id": pl.String, "field": pl.String,
                                        "message": pl.String})
    return clean, rejects
