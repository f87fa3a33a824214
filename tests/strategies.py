"""Hypothesis strategies shared by the test files."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from medaid.domain.brackets import Schedule

ANY = object()


@st.composite
def schedules(
    draw,
    *,
    mode: object = ANY,
    accumulate: object = ANY,
    gate: bool = True,
    caps: bool = True,
    ascending: bool = False,
    max_rate: int = 1000,
) -> Schedule:
    """A plan's compiled arithmetic: 1-4 contiguous brackets in fen, rates in thousandths (or
    hundredths), optional gate and caps, any unit and method.  Keyword arguments pin a part."""
    n = draw(st.integers(1, 4))
    edges = sorted(draw(st.sets(st.integers(0, 5_000_000), min_size=n + 1, max_size=n + 1)))
    mode = draw(st.sampled_from(["marginal", "whole"])) if mode is ANY else mode
    uppers: list[int | None] = list(edges[1:])
    if mode == "whole" or draw(st.booleans()):
        uppers[-1] = None
    per = draw(st.sampled_from([100, 1000]))
    nums = [draw(st.integers(0, max_rate * per // 1000)) for _ in range(n)]
    if ascending:
        nums.sort()
    return Schedule(
        lowers=edges[:-1], uppers=uppers, rates=[Decimal(k) / per for k in nums], mode=str(mode),
        gate=draw(st.none() | st.integers(0, 3_000_000)) if gate else None,
        accumulate=str(draw(st.sampled_from(["claim", "year"])) if accumulate is ANY else accumulate),
        annual_cap=draw(st.none() | st.integers(0, 3_000_000)) if caps else None,
        claim_cap=draw(st.none() | st.integers(0, 1_000_000)) if caps else None,
        unit=draw(st.sampled_from(["fen", "jiao", "yuan"])),
        method=draw(st.sampled_from(["half-up", "half-even", "down"])),
    )
