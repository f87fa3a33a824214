"""The one rejects frame: a problem per record (``row``, ``claim_id``, ``field``, ``message``).

Problems are data (README.md#reliability): the readers, validation, the columnar settlement and
the Spark job (which adds ``source`` in front) build their rejects to :func:`reject_schema`.
"""

from __future__ import annotations

import polars as pl

from ..errors import Problem
from .columns import REJECT_COLUMNS, ROW


def reject_schema() -> dict[str, pl.DataType]:
    """The one schema of a rejects frame: :data:`medaid.io.columns.REJECT_COLUMNS` with their
    types (``row`` ``Int64``, the others ``String``)."""
    types: tuple[pl.DataType, ...] = (pl.Int64(), pl.String(), pl.String(), pl.String())
    return dict(zip(REJECT_COLUMNS, types))


def as_rejects(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame``'s :data:`medaid.io.columns.REJECT_COLUMNS` in order, typed by
    :func:`reject_schema`: the rejects frame of any frame holding those columns (others are
    dropped)."""
    return frame.select([pl.col(c).cast(t) for c, t in reject_schema().items()])


def empty_rejects() -> pl.DataFrame:
    """A rejects frame with no rows."""
    return pl.DataFrame(schema=reject_schema())


def problems_frame(problems: list[Problem]) -> pl.DataFrame:
    """Structural problems of a file (:func:`medaid.io.readers.read_raw`) as a rejects frame."""
    if not problems:
        return empty_rejects()
    return pl.DataFrame(
        {ROW: [p.line for p in problems], "claim_id": [None] * len(problems),
         "field": [p.field for p in problems], "message": [p.message for p in problems]},
        schema=reject_schema(),
    )
