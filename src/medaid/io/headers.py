"""Header rows of claim files: which column gives which field (:data:`medaid.io.columns.HEADER_ALIASES`,
matched by :func:`medaid.io.columns.normalise_header`, or ``--map column=field``), what is wrong
with a header (a field named twice, a required field missing), and where the header is among
a file's first rows (titles above it are not rows)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..errors import Problem
from .columns import HEADER_ALIASES, REQUIRED_FIELDS, RESULT_FIELDS, ROW, alias_field, normalise_header
from .raw import ReadError

#: Column names the batch adds; input columns so named are renamed ``NAME_input``.
_RESERVED = frozenset(RESULT_FIELDS) | {ROW, "old_relief", "new_relief", "adjustment", "status"}


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["金额=self_pay", ...]`` (``--map column=field``) → ``{"金额": "self_pay"}``."""
    out: dict[str, str] = {}
    for p in pairs:
        col, sep, field = p.partition("=")
        if not sep or not col.strip() or field.strip() not in HEADER_ALIASES:
            raise ReadError(Problem(
                f"--map {p!r}: write COLUMN=FIELD with FIELD one of {', '.join(HEADER_ALIASES)}"))
        out[col.strip()] = field.strip()
    return out


def _field_of(h: Any, mapping: Mapping[str, str], by_norm: Mapping[str, str]) -> str | None:
    """The field a header names (``--map`` first, then the aliases), or ``None``."""
    h = "" if h is None else str(h)
    return mapping.get(h) or by_norm.get(normalise_header(h)) or alias_field(h)


def header_problems(
    headers: Sequence[Any], fields: Sequence[str | None], source: str, line: int = 1,
    with_map: bool = True,
) -> list[Problem]:
    """What is wrong with a header row whose cells name ``fields`` (``None`` for a column that
    names none): a second column naming a field already named, and required fields that no
    column names, located at the header's ``line``.  The local readers and the Spark job refuse
    a file with these problems; ``with_map``: the messages suggest ``--map`` (the Spark job has
    no such option)."""
    problems: list[Problem] = []
    taken: dict[str, str] = {}
    for h, field in zip(headers, fields):
        h = "" if h is None else str(h)
        if field is None:
            continue
        if field in taken:
            problems.append(Problem(
                f"columns {taken[field]!r} and {h!r} both give {field}; drop one"
                + (" or use --map" if with_map else ""), source=source, line=line, field=field))
        else:
            taken[field] = h
    missing = [f for f in REQUIRED_FIELDS if f not in taken]
    if missing:
        cells = ["" if h is None else str(h) for h in headers]
        if any(_DATA_CELL.fullmatch(c) for c in cells):
            # a claim where the header should be: its cells (ID numbers, bank accounts, names)
            # are personal data, never repeated in a message
            found = (f"; line {line} looks like a claim, not a header (a cell of digits, such as "
                     "a date, an amount or an id); the file needs a header row naming its columns")
        else:
            found = f"; found {', '.join(repr(c) for c in cells)}"
        problems.append(Problem(
            "missing required column(s): " + ", ".join(missing)
            + found + ". Name them in English or "
            "Chinese (e.g. 结算单号, 人员编号, 结算日期, 合规自付费用)"
            + (" or use --map COLUMN=FIELD" if with_map else ""),
            source=source, line=line))
    return problems


#: A header cell that is data: digits, perhaps with the separators of a date, an amount or an id.
_DATA_CELL = re.compile(r"[+-]?[0-9][0-9 .,:/_-]*[0-9Xx]?")


def canonical_names(
    headers: list[str], mapping: Mapping[str, str] | None, source: str,
    reserved: frozenset[str] | None = None, line: int = 1,
) -> list[str]:
    """Rename headers to field names (``--map`` first, then the aliases); others unchanged.

    Raises :class:`ReadError` when two columns name the same field, a required field has no
    column, or a ``--map`` names a column the header does not have, naming the file, the
    header's ``line`` and what is wrong."""
    mapping = mapping or {}
    by_norm = {normalise_header(k): v for k, v in mapping.items()}
    fields = [_field_of(h, mapping, by_norm) for h in headers]
    problems = header_problems(headers, fields, source, line)
    if problems:
        raise ReadError(problems)
    present = {"" if h is None else str(h) for h in headers}
    present |= {normalise_header(h) for h in present}
    unknown = [k for k in mapping if k not in present and normalise_header(k) not in present]
    if unknown:  # a misspelt --map: said, rather than silently doing nothing
        raise ReadError([Problem(f"{k}={mapping[k]}: the header has no column {k!r}", source=source,
                                 line=line, field="--map") for k in unknown])
    names: list[str] = []
    for h, field in zip(headers, fields):
        h = "" if h is None else str(h)
        name = field or h.strip() or f"column_{len(names) + 1}"
        # an input column named like a result column is renamed
        if field is None and name in (_RESERVED if reserved is None else reserved):
            name = f"{name}_input"
        names.append(name)
    # a repeated pass-through header gets the first suffix _2, _3, ... that names no other
    # column (``a, a, a_2`` → ``a, a_3, a_2``): every column keeps a name of its own
    taken = set(names)
    first: set[str] = set()
    for i, n in enumerate(names):
        if n not in first:
            first.add(n)
            continue
        k = 2
        while f"{n}_{k}" in taken:
            k += 1
        names[i] = f"{n}_{k}"
        taken.add(names[i])
    return names


#: The header is looked for among this many first non-blank lines (sheet rows): exports put
#: a title, a date range or a unit line above it.
HEADER_SEARCH_ROWS = 10


def pick_header(
    candidates: Iterable[tuple[int, list[Any]]], name_of: Callable[..., list[str]],
    mapping: Mapping[str, str] | None, source: str,
) -> tuple[int, list[str]]:
    """The header among the first rows of a file: ``(line, names)``.

    ``candidates`` are ``(line, cells)`` of the first non-blank lines (sheet rows), in order;
    the first :data:`HEADER_SEARCH_ROWS` are looked at.  The header is the first of them that
    names every required field (English or Chinese, or by ``--map``); the lines above it are
    titles, not rows.  When none does, the candidate naming the most known fields (the first
    of equals) is taken as the header the user meant, and ``name_of`` (``canonical_names``)
    raises its :class:`ReadError` naming that line and the required columns it lacks."""
    mapping = mapping or {}
    by_norm = {normalise_header(k): v for k, v in mapping.items()}
    best: tuple[int, int, list[Any]] | None = None
    for i, (line, cells) in enumerate(candidates):
        if i >= HEADER_SEARCH_ROWS:
            break
        fields = {_field_of(h, mapping, by_norm) for h in cells} - {None}
        if all(f in fields for f in REQUIRED_FIELDS):
            return line, name_of(cells, line=line)
        if best is None or len(fields) > best[0]:
            best = (len(fields), line, cells)
    if best is None:
        raise ReadError(Problem("the file is empty", source=source))
    return best[1], name_of(best[2], line=best[1])
