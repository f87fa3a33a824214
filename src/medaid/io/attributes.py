"""Claim attributes in claim files: the columns a rule set declares (hospital level 医院等级,
place 就医地, disease 病种…; docs/calculation.md *Claim attributes*) read into the claims frame.

Rules implemented (docs/batch.md, *Input files*):

* A rule set declares each attribute with its name and the input columns it is read from
  (``columns``); the reading functions take them as plain data, ``{name: (alias, …)}``
  (:data:`Declared`), so this layer does not depend on the rule model.  A column whose header
  (:func:`medaid.io.columns.normalise_header`: NFKC, case-folded, trimmed) is the attribute's
  name or one of its aliases gives that attribute; the column is named by the attribute's name
  in the frame (and in the results, as claim fields are).
* Two columns giving one attribute refuse the file, naming both, as two columns giving one
  claim field do (:func:`medaid.io.headers.header_problems`).
* Values are text (``String``), tidied as the claim's are (:meth:`medaid.domain.claims.Claim`:
  :func:`medaid.domain.claims.tidy_id`, NFKC, invisible characters removed, trimmed); an empty
  value is no value (null).  They are not checked here: the rule version maps a value to its
  code, and the engine refuses a value that is neither, naming the attribute.
* An attribute the file has no column for is not added: the claims have no value for it.

The attribute columns are found after the header is read (by :func:`name_attributes`), so a
batch may read its file while its rules load (``medaid batch``): the attribute columns pass
through the readers as text and are named and tidied once the declarations are known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ..domain.identifiers import tidy_id
from ..errors import Problem
from .columns import normalise_header
from .ids import untidy
from .raw import ReadError

#: Declared attributes as the readers take them: attribute name → the header aliases of its
#: input columns (the attribute's own name is always one).
Declared = Mapping[str, Sequence[str]]


def attribute_columns(columns: Sequence[str], declared: Declared, source: str = "",
                      line: int = 1) -> dict[str, str]:
    """The columns (of ``columns``, as the readers named them) that give a declared attribute:
    ``{column: attribute}``.  Raises :class:`medaid.io.raw.ReadError` when two columns give one
    attribute, naming the file, the header's ``line`` and both columns."""
    index = {normalise_header(a): name for name, aliases in declared.items() for a in (name, *aliases)}
    found: dict[str, str] = {}
    taken: dict[str, str] = {}
    problems: list[Problem] = []
    for c in columns:
        name = index.get(normalise_header(c))
        if name is None:
            continue
        if name in taken:
            problems.append(Problem(f"columns {taken[name]!r} and {c!r} both give attribute {name}; drop one",
                                    source=source, line=line, field=name))
            continue
        taken[name] = c
        found[c] = name
    if problems:
        raise ReadError(problems)
    return found


def name_attributes(frame: pl.DataFrame, declared: Declared, source: str = "",
                    line: int = 1) -> pl.DataFrame:
    """``frame`` (a claims frame, typed or text) with each column giving a declared attribute
    (:func:`attribute_columns`) named by the attribute and its values tidied as ids (empty →
    null), as ``String``; other columns as they are.  A frame whose attribute columns are named
    and tidied already comes back unchanged."""
    if not declared:
        return frame
    found = attribute_columns([c for c in frame.columns], declared, source, line)
    if not found:
        return frame
    renamed = frame.rename({c: a for c, a in found.items() if c != a})
    return renamed.with_columns(tidy_attribute(renamed[a]) for a in found.values())


def tidy_attribute(col: pl.Series) -> pl.Series:
    """An attribute column's values as a claim holds them: text tidied by
    :func:`medaid.domain.claims.tidy_id` (as :class:`medaid.domain.claims.Claim` tidies them),
    empty → null.  Attribute values repeat (a few levels, places): each distinct value that
    needs it is tidied once."""
    text = col.cast(pl.String).alias(col.name)
    values = text.unique().drop_nulls()
    fix = values.filter(values.to_frame().select(untidy(pl.col(col.name), "household_id")).to_series())
    if fix.len():
        text = text.replace(fix, pl.Series([tidy_id(v) for v in fix.to_list()], dtype=pl.String))
    if (text.str.len_bytes() == 0).any():
        text = pl.select(pl.when(text.str.len_bytes() > 0).then(text)).to_series().alias(col.name)
    return text


def with_attributes(clean: pl.DataFrame, rows_as_read: pl.DataFrame, declared: Declared,
                    source: str = "", line: int = 1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A file's typed rows with their attribute columns named and tidied
    (:func:`name_attributes`), and its rows as read (the rejected rows' text, for the rejects
    file) with the same columns renamed, values as read."""
    if not declared:
        return clean, rows_as_read
    found = attribute_columns(clean.columns, declared, source, line)
    if not found:
        return clean, rows_as_read
    renamed = {c: a for c, a in found.items() if c != a and c in rows_as_read.columns}
    return name_attributes(clean, declared, source, line), rows_as_read.rename(renamed)


def declared_attributes(book: Any) -> dict[str, tuple[str, ...]]:
    """The attributes a rule book declares, as the readers take them (:data:`Declared`): the
    union over its rule sets (those of its chosen scheme when one is chosen), each attribute's
    column aliases in the order first declared, then its ``title`` (the header a Chinese
    results file gives it, :func:`attribute_titles`, so that such a file reads back).  Reads
    ``rule_set.attributes`` (name → declaration with ``columns``) where the rule model has it;
    none otherwise."""
    scheme = getattr(book, "scheme", None)
    out: dict[str, tuple[str, ...]] = {}
    for rs in getattr(book, "rule_sets", ()):
        if scheme is not None and getattr(rs, "id", scheme) != scheme:
            continue
        for name, attr in (getattr(rs, "attributes", None) or {}).items():
            title = getattr(attr, "title", None)
            out[name] = tuple(dict.fromkeys((*out.get(name, ()), *getattr(attr, "columns", ()),
                                             *((title,) if title else ()))))
    return out


def attribute_titles(book: Any) -> dict[str, str]:
    """The titles the rule book gives its declared attributes (``level`` → ``医院等级``), the
    first a version declares of each (those of its chosen scheme when one is chosen): the
    headers of the attribute columns in a results file written with ``lang="zh"``
    (docs/batch.md, *Output files*)."""
    scheme = getattr(book, "scheme", None)
    out: dict[str, str] = {}
    for rs in getattr(book, "rule_sets", ()):
        if scheme is not None and getattr(rs, "id", scheme) != scheme:
            continue
        for name, attr in (getattr(rs, "attributes", None) or {}).items():
            title = getattr(attr, "title", None)
            if title and name not in out:
                out[name] = title
    return out
