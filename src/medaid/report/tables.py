"""Tabulate's plain tables drawn without tabulate (:func:`text_table`), for the desk's
explanation (:mod:`medaid.report.explain`) and ``medaid batch``'s totals
(:mod:`medaid.report.batch_text`); standard library only, tabulate imported only to measure a
cell that is not ASCII.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def text_table(rows: list[list[Any]], headers: list[str] | None = None,
               align: Iterable[str] | None = None, *, ruled: bool = False) -> str | None:
    """Tabulate's ``simple`` table (``plain`` without headers, or ``simple`` with a line of
    dashes above and below the rows when ``ruled``; numbers not parsed) of a table whose cells
    and headers are all one line of printable text, each column left- or right-aligned: the
    same text, drawn without tabulate's general machinery, which took most of a settlement's
    explanation (a Chinese explanation, 2,000 times on the shared machine at load 16: 0.66–0.71
    ms of CPU each with tabulate, 0.28–0.33 ms so; the service draws one per settlement), and
    whose import (with wcwidth) took 35–40 ms at the end of every ``medaid batch`` run.
    tests/test_explain.py and tests/test_batch_totals.py check the two agree.  ``None`` for
    any other table (tabulate draws it).

    Tabulate's rules kept: a cell is stripped of surrounding whitespace and measured in
    terminal columns (``wcwidth``, when tabulate has it: a Chinese character is two; tabulate is
    imported only when a cell is not ASCII); a column is as wide as its widest cell, and at
    least its header's width + 2; columns are joined by two spaces and each line loses its
    trailing spaces; the header row is aligned as its column and underlined with dashes."""
    n = len(rows[0]) if rows else 0
    if n == 0 or any(len(r) != n for r in rows) or (headers is not None and len(headers) != n):
        return None
    texts = [c for r in rows for c in r] + list(headers or ())
    if not all(isinstance(c, str) and c.isprintable() for c in texts):
        return None
    aligns = ["left"] * n
    for i, a in enumerate(list(align or ())[:n]):
        if a != "global":
            aligns[i] = a
    if any(a not in ("left", "right") for a in aligns):
        return None
    wide: list[Any] = []

    def width(c: str) -> int:  # printable ASCII is one column a character, whatever measures it
        if c.isascii():
            return len(c)
        if not wide:
            wide.append(_cell_width())
        return int(wide[0](c))

    cols = [[r[i].strip() for r in rows] for i in range(n)]
    widths = [[width(c) for c in col] for col in cols]
    heads = [width(h) for h in headers or ()]
    if any(w < 0 for ws in (*widths, heads) for w in ws):
        return None
    colw = [max(max(ws), heads[i] + 2 if headers is not None else 0) for i, ws in enumerate(widths)]

    def line(cells: Iterable[str], ws: Iterable[int]) -> str:
        return "  ".join(c + " " * (cw - w) if a == "left" else " " * (cw - w) + c
                         for c, w, cw, a in zip(cells, ws, colw, aligns, strict=True)).rstrip()

    rule = "  ".join("-" * cw for cw in colw).rstrip()  # (a column of empty cells has no dashes)
    ruled = ruled and headers is None
    out = [line(headers, heads), rule] if headers is not None else [rule] if ruled else []
    out.extend(line((col[j] for col in cols), (ws[j] for ws in widths)) for j in range(len(rows)))
    return "\n".join([*out, rule] if ruled else out)


def _cell_width() -> Any:
    """How tabulate measures a cell: ``wcwidth.wcswidth`` if tabulate found wcwidth, else ``len``."""
    import tabulate

    wide = getattr(tabulate, "wcwidth", None)  # the module tabulate imported, or None (not in its stubs)
    return wide.wcswidth if wide is not None and getattr(tabulate, "WIDE_CHARS_MODE", False) else len
