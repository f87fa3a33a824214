"""Ordering, columnar: the rows in the order the engine settles them, per (person, benefit year,
pool) in (date, claim id) order (docs/calculation.md, *Accumulation*; how, docs/columnar.md,
steps 2, 3 and 7), and the way back to input order.

One unsigned 64-bit key per row, ``hash(person) | (benefit year, pool) | day | row``, sorted
with a radix sort; the row index is read back from the low bits.  Rows whose key ties (same
person hash, pool, year and day) or whose person hash collides with another person's are
re-sorted exactly by (person, day, claim id): that subset is small.  Input already in such an
order is detected and not sorted at all.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import polars as pl

from ..errors import ClaimError, Problem
from ..tuning import mark
from .tables import PlanTables, lookup

#: A key packs the row index when at least this many bits remain for the person hash.
MIN_HASH_BITS = 28
_SEED = 0x6D656461


def person_hash(frame: pl.DataFrame) -> tuple[pl.Expr, int | None]:
    """A 64-bit hash of the person id, of which only the top bits enter the sort key, and how
    many top bits tell persons apart exactly (``None``: a real hash, which may collide).
    Collisions are found and repaired exactly after the sort, so the hash's quality affects
    speed, never results.

    Person ids kept as categories already have a small distinct integer each: that code, moved
    to the top bits (no text is hashed; while the key keeps all its bits nothing can collide,
    and the collision check is skipped).  Text person ids that are all plain decimal numbers
    (``10194974``: digits, no leading zero, below 2⁶⁴; :func:`decimal_ids`) are their number,
    exactly as distinct as the text: the same, without the collision check, which gathers every
    person id into the sorted order (at 10 M claims 1.25 s of CPU and 160 MB)."""
    col = frame["person_id"]
    if isinstance(col.dtype, pl.Categorical) and not col.null_count():  # (null has no code)
        top = col.to_physical().max()
        bits = max(1, (top if isinstance(top, int) else 0).bit_length())
        return pl.col("person_id").to_physical().cast(pl.UInt64) * (1 << (64 - bits)), bits
    number = decimal_ids(col)
    if number is not None:
        top = number.max()
        bits = max(1, (top if isinstance(top, int) else 0).bit_length())
        return pl.lit(number) * (1 << (64 - bits)), bits
    return pl.col("person_id").hash(_SEED), None


def decimal_ids(col: pl.Series) -> pl.Series | None:
    """``col``'s values as ``UInt64`` numbers when every one is the plain decimal text of its
    number (no sign, no leading zero, no space: the number written back is the text), so that
    two values are equal exactly when their numbers are; else ``None``.  (One cast and its
    check.)

    The check: the cast takes at most an optional sign, leading zeros and the digits, so the
    text is the number's own exactly when it has as many bytes as the number has digits
    (``10**(L-1) <= number < 10**L`` for a text of ``L`` bytes; ``0 <= number < 10`` for one
    byte).  Writing every number back as text to compare took four times as long (at 10 M
    ids 0.23 s of CPU against 0.05 s, one width)."""
    if col.dtype != pl.String or not col.len() or col.null_count():
        return None
    # bytes → the least and the first number too large for so many digits (no u64 has 21)
    least = [0, 0] + [10 ** (k - 1) for k in range(2, 21)] + [2**64 - 1]
    above = [0] + [10**k for k in range(1, 20)] + [2**64 - 1, 0]
    # the cast and the widths in one query, which polars spreads over the column's pieces (the
    # 10 M ids of the peer benchmark as the scan reads them, 178 pieces: 0.035 s against
    # 0.07-0.10 s for the cast alone on one thread)
    both = col.to_frame("v").lazy().select(
        pl.col("v").cast(pl.UInt64, strict=False).alias("n"),
        pl.col("v").str.len_bytes().clip(upper_bound=len(least) - 1).alias("size")).collect()
    number, size = both["n"], both["size"]
    if number.null_count():
        return None
    short, long = size.min(), size.max()
    assert isinstance(short, int) and isinstance(long, int)
    # (20 digits: 10**19 ≤ number ≤ 2**64 − 1, the largest; so ``<`` for up to 19, ``≤`` at 20)
    if short == long:  # (ids of one width, as most systems number them: the least and greatest say it)
        lo, hi = number.min(), number.max()
        assert isinstance(lo, int) and isinstance(hi, int)
        fits_all = lo >= least[short] and (hi < above[short] or (short == 20 and hi <= above[short]))
    else:
        low = pl.Series(least, dtype=pl.UInt64).gather(size)
        high = pl.Series(above, dtype=pl.UInt64).gather(size)
        fits_all = bool(((number >= low) & ((number < high) | ((size == 20) & (number <= high)))).all())
    return number if fits_all else None


def key_parts(t: PlanTables, first_day: dt.date, hashed: pl.Expr) -> list[pl.Expr]:
    """The sort key's parts, computed in the placement's pass (:func:`medaid.batch.placement.place`,
    whose ``__by`` and ``__p`` they read): ``bp`` (benefit year and pool, from the year before
    the first date's), ``d`` (day offset from the first date) and ``h`` (the person hash)."""
    pools = len(t.pools)
    return [
        ((pl.col("__by") - (first_day.year - 1)) * pools + lookup(t.pool_index(), pl.col("__p"), pl.Int64))
        .cast(pl.UInt32).alias("bp"),
        (pl.col("date") - pl.lit(first_day)).dt.total_days().cast(pl.UInt32).alias("d"),
        hashed.alias("h"),
    ]


def in_order(placed: pl.DataFrame, low: pl.DataFrame, bits_bp: int) -> pl.Series | None:
    """When the rows already come in a valid processing order (every (person, benefit year,
    pool) group contiguous, and in (date, claim id) order inside it), the group-start flags;
    else ``None`` and the rows get sorted.  A probe of the first rows gives up early on input
    in any other order."""
    n = placed.height
    bp, d = low["bp"], low["d"]

    def group_hash(m: int) -> pl.Series:  # equal groups ⇒ equal
        return (low["h"].slice(0, m) // (1 << bits_bp)) * (1 << bits_bp) + bp.slice(0, m).cast(pl.UInt64)

    def same_group(person: pl.Series, m: int) -> pl.Series:
        return same_as_previous(person.slice(0, m)) & same_as_previous(bp.slice(0, m))

    # (the probe looks at its own rows only: the whole person column made one piece, and the
    # whole group hash, cost 0.1–0.4 s at 10 M rows on input that is not in order)
    probe = min(n, 1 << 16)
    if probe - int(same_group(placed["person_id"].slice(0, probe).rechunk(), probe).sum()) \
            > group_hash(probe).n_unique():
        return None  # a group comes back after another one: not grouped
    same = same_group(placed["person_id"].rechunk(), n)
    if (same & (d < d.shift(1, fill_value=0))).any():
        return None
    tie = same & same_as_previous(d)
    if tie.any():
        at = pl.int_range(0, n, dtype=pl.UInt32, eager=True).filter(tie)
        claim = placed["claim_id"].rechunk()
        if not (claim.gather(at) > claim.gather(at - 1)).all():
            return None
    # distinct group hashes ≤ distinct groups ≤ runs of equal groups; equality of the ends means
    # every group is one run
    if n - int(same.sum()) != group_hash(n).n_unique():
        return None
    return ~same


def sorted_order(
    placed: pl.DataFrame, held: list[pl.DataFrame], bits_bp: int, bits_d: int, bits_i: int,
    exact_bits: int | None = None,
) -> Order:
    """The permutation into processing order and the group-start flags in that order: the
    radix-sorted key, then the exact repair of ties and person-hash collisions (none can
    occur when the key keeps the ``exact_bits`` top bits of the person hash that tell persons
    apart: see :func:`person_hash`); with the persons' numbers (:class:`Order`).

    ``held`` holds the key's parts (``bp``, ``d``, ``h``: :func:`key_parts`), taken out: they
    are freed once the key is made, but for the days (at 10 M rows 120 MB less from the sort
    on)."""
    n = placed.height
    low = held.pop()
    day = low["d"]
    packed = 64 - bits_bp - bits_d - bits_i >= MIN_HASH_BITS
    hb = 64 - bits_bp - bits_d - (bits_i if packed else 0)
    ids = placed["claim_id"]
    # claim ids ascend with the row index (numbered exports): a tie on (group hash, day) is
    # then already in claim-id order, because the packed key's low bits are the row index
    in_claim_order = packed and ids.null_count() == 0 and ids.is_sorted()
    parts = [low]
    del low
    perm, grp, gp = _order(parts, bits_bp, bits_d, bits_i, ties=not in_claim_order)
    mark("sort")
    # (made one piece only where the whole column is gathered: a copy of every person id, at
    # 10 M rows 0.46 s on the main thread, for nothing when the key's person part is exact)
    person = placed["person_id"]
    collide: pl.Series | None = None
    if exact_bits is None or exact_bits > hb:
        person = person.rechunk()
        person_s = person.gather(perm)
        same_person = same_as_previous(person_s)
        collide = same_as_previous(grp) & ~same_person
    if gp is None:
        fix = pl.zeros(n, pl.Boolean, eager=True)
    else:
        tie = same_as_previous(gp)
        fix = tie | tie.shift(-1, fill_value=False)
    collided = collide is not None and bool(collide.any())
    if collide is not None and collided:
        fix = fix | grp.is_in(grp.filter(collide).unique().implode())
    mark("check")
    sub: pl.DataFrame | None = None
    pos = pl.Series([], dtype=pl.UInt32)
    if fix.any():
        pos = pl.arange(0, n, eager=True, dtype=pl.UInt32).filter(fix)
        sub_perm = perm.gather(pos)
        # (without ``gp``, the rows' own: their group part and day, as the packed key has them)
        gp_at = (gp.gather(pos) if gp is not None
                 else grp.gather(pos) * (1 << bits_d) + day.gather(sub_perm).cast(pl.UInt64))
        sub = pl.DataFrame({
            "grp": grp.gather(pos), "person": person.gather(sub_perm), "gp": gp_at,
            "claim": placed["claim_id"].gather(sub_perm), "perm": sub_perm,
        }).sort("grp", "person", "gp", "claim")
        perm = perm.scatter(pos, sub["perm"])
    mark("fixup")
    start = ~same_as_previous(grp)
    if collided and sub is not None:
        # inside a colliding run (whole, contiguous, now sorted by person) a new person starts
        # a new group
        new = same_as_previous(sub["grp"]) & ~same_as_previous(sub["person"])
        start = start.scatter(pos.filter(new), True)
    persons = None
    if collide is None and exact_bits is not None and exact_bits <= hb:
        # the key's person part is the person itself (:func:`person_hash`): a run of equal
        # parts is one person
        persons = _person_numbers(grp // (1 << bits_bp), None, None)
    elif collide is not None:
        if sub is not None:  # the persons where the repair moved rows, and their neighbours
            person_s = person_s.scatter(pos, sub["person"])
            near = pl.concat([pos, pos + 1]).unique()
            near = near.filter((near > 0) & (near < n))
            same_person = same_person.scatter(near, person_s.gather(near) == person_s.gather(near - 1))
        persons = _person_numbers(grp // (1 << bits_bp), person_s, same_person)
    return Order(perm, start, persons)


class Order(NamedTuple):
    """:func:`sorted_order`'s answer: the permutation into processing order, the group-start
    flags in that order, and (text person ids) a number per sorted row telling its person
    apart (:func:`_person_numbers`; else ``None``)."""

    perm: pl.Series
    start: pl.Series
    persons: pl.Series | None = None


def _person_numbers(hashed: pl.Series, person: pl.Series | None, same_person: pl.Series | None) -> pl.Series:
    """A number per sorted row, equal for two rows exactly when their person is.

    ``hashed`` is each sorted row's person hash part of the key (every row of a person has the
    same, and the rows are sorted by it), ``person`` its person id.  A run of equal hash parts
    holds one person, unless the hash collides: such a run (it has two different neighbours)
    numbers its persons apart by their rank.  Number: ``run + (rank − 1) × runs`` (rank 1
    outside the colliding runs), a ``UInt32`` when it fits (4 bytes a row: memory).
    ``same_person``: whether each row's person is its predecessor's (the sort's collision
    check has it).  Without ``person`` the hash parts are the persons themselves (exact,
    :func:`person_hash`): the runs are the numbers."""
    same = same_as_previous(hashed)
    run = (~same).cast(pl.UInt32).cum_sum() - 1  # (runs ≤ rows < 2³²)
    if person is None or same_person is None:  # the hash part is exact: no run collides
        return run
    bad = same & ~same_person
    if not bad.any():
        return run
    hit = run.is_in(run.filter(bad).unique().implode())
    at = hit.arg_true()
    ranks = (pl.DataFrame({"run": run.gather(at), "person": person.gather(at)})
             .select(pl.col("person").rank("dense").over("run").cast(pl.UInt64)).to_series())
    runs = int(run[-1]) + 1
    wide = run.cast(pl.UInt64).scatter(at, run.gather(at).cast(pl.UInt64) + (ranks - 1) * runs)
    top = ranks.max()
    return wide.cast(pl.UInt32) if (top if isinstance(top, int) else 1) * runs < 2**32 else wide


def _order(held: list[pl.DataFrame], bits_bp: int, bits_d: int, bits_i: int,
           ties: bool = True) -> tuple[pl.Series, pl.Series, pl.Series | None]:
    """A permutation putting rows in (group hash, day) order, with the group part ``grp``
    (person hash and (benefit year, pool)) and ``gp`` (``grp`` and day) of each sorted row;
    ``gp`` is ``None`` on the packed key's path when ``ties`` is false (the caller needs no
    ties found: 8 bytes a row less at the sort's peak).

    With enough bits, the row index rides in the low bits of one ``UInt64`` key and a plain
    (radix) sort does the work; otherwise an ``arg_sort`` of the key without the index.  The
    key's parts (``held``, taken out) are freed once the key is made."""
    low = held.pop()
    hb = 64 - bits_bp - bits_d - bits_i
    h, bp, d = pl.col("h"), pl.col("bp").cast(pl.UInt64), pl.col("d").cast(pl.UInt64)
    if hb >= MIN_HASH_BITS:
        # (elementwise work runs on the streaming engine: in parallel, morsel by morsel)
        key = low.lazy().with_row_index("__i").select(
            (h // (1 << (64 - hb))) * (1 << (64 - hb))
            + bp * (1 << (bits_d + bits_i))
            + d * (1 << bits_i)
            + pl.col("__i").cast(pl.UInt64)
        ).collect(engine="streaming").to_series()
        del low
        key = key.sort()
        k = pl.col(key.name)
        parts = key.to_frame().lazy().select(
            (k & ((1 << bits_i) - 1)).cast(pl.UInt32).alias("perm"),
            (k // (1 << (bits_i + bits_d))).alias("grp"),
            *([(k // (1 << bits_i)).alias("gp")] if ties else []),
        ).collect(engine="streaming")
        return parts["perm"], parts["grp"], parts["gp"] if ties else None
    hb = 64 - bits_bp - bits_d
    if hb < 16:
        raise ClaimError(Problem(
            "dates or benefit years span too wide a range for one batch; split the file by year",
            field="date"))
    key = low.select(
        (h // (1 << (64 - hb))) * (1 << (64 - hb)) + bp * (1 << bits_d) + d
    ).to_series()
    del low
    perm = key.arg_sort().cast(pl.UInt32)
    gp = key.gather(perm)
    return perm, gp // (1 << bits_d), gp


def same_as_previous(s: pl.Series) -> pl.Series:
    """Whether each element equals the one before it (the first: False); compares two
    zero-copy slices instead of materialising a shifted copy."""
    if len(s) == 0:
        return pl.Series([], dtype=pl.Boolean)
    eq = s.slice(1) == s.slice(0, len(s) - 1)
    return pl.concat([pl.Series([False]), eq.fill_null(False)])


def permuted(cols: dict[str, pl.Series], perm: pl.Series | None) -> pl.DataFrame:
    """The columns ``cols`` (name → column) in processing order (as they are when ``perm`` is
    ``None``), each one contiguous piece; the columns are gathered in parallel."""
    frame = pl.DataFrame([c.rechunk().alias(name) for name, c in cols.items()])
    return frame if perm is None else frame.select(pl.all().gather(perm))


def inverse(perm: pl.Series, n: int) -> pl.Series:
    """The inverse permutation: ``inv[perm[k]] = k`` (one scatter)."""
    return pl.zeros(n, pl.UInt32, eager=True).scatter(perm, pl.int_range(0, n, dtype=pl.UInt32, eager=True))


def unpermute(held: list[pl.DataFrame], inv: pl.Series) -> pl.DataFrame:
    """Results in processing order (``held[0]``, taken out) → input order: a gather of each
    result column by the inverse permutation ``inv`` (:func:`inverse`)."""
    # Each column is made one chunk first: the streaming arithmetic leaves one per morsel, and
    # a gather from many chunks looks each index's chunk up (at 10 M rows, 0.7 s for the six
    # columns against 0.35 s).  Two columns at a time (gathered in parallel), the widest left
    # with the narrowest left, each taken out of the list as it is made one piece (its pieces
    # freed before the gather, not after) and freed once put back: at any moment the columns
    # exist once, plus at most one wide and one narrow copy.  This is the peak of a large run:
    # at 10 M claims (the peer benchmark's, every result column) 1,609 MiB with all the pieces
    # kept until the end, 1,499–1,544 with each freed before its gather but two wide columns
    # at once, 1,405–1,423 so (the settlement in one process, sampled).
    cols = held.pop().get_columns()
    names = [c.name for c in cols]
    cols.sort(key=lambda c: c.estimated_size())
    done: dict[str, pl.Series] = {}
    while cols:
        pair = [cols.pop().rechunk()] + ([cols.pop(0).rechunk()] if cols else [])
        done |= {c.name: c for c in pl.DataFrame(pair).select(pl.all().gather(inv)).get_columns()}
        del pair
    return pl.DataFrame([done[n] for n in names])
