"""medaid: exact medical-aid relief (医疗救助) on compliant self-pay, by rules kept as data.

Money is integers of fen everywhere in the API (``30000`` yuan is ``3_000_000``); use
:func:`parse_yuan` / :func:`format_yuan` or :meth:`Claim.from_yuan` at the edges.

    >>> import medaid
    >>> book = medaid.load_rules("rules")
    >>> claim = medaid.Claim.from_yuan(claim_id="C1", person_id="P1", date="2024-05-03",
    ...                                self_pay="30000", group="key", kind="inpatient")
    >>> medaid.format_yuan(medaid.quote(claim, book).relief)
    '23,300.00'
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._lazy import lazy_exports as _lazy_exports
from .errors import ClaimError, MedaidError, MoneyError, Problem, RuleError
from .money import format_yuan, parse_yuan

if _TYPE_CHECKING:
    from .batch.objects import settle
    from .domain.brackets import Segment
    from .domain.claims import Claim
    from .domain.engine import Placement, PoolState, Position, Positions, Settlement, place, quote, settle_at
    from .domain.identifiers import tidy_id
    from .domain.rules import Bracket, Plan, RuleBook, RuleSet, load_rules

# The models (pydantic) load on first use, so that `medaid --help` and the CLI's start-up do
# not pay for them before a command needs them (PEP 562).
_LAZY = {
    "Segment": "domain.brackets", "Claim": "domain.claims", "Placement": "domain.engine",
    "PoolState": "domain.engine", "Settlement": "domain.engine", "place": "domain.engine",
    "quote": "domain.engine", "settle": "batch.objects", "Bracket": "domain.rules",
    "Plan": "domain.rules", "RuleBook": "domain.rules", "RuleSet": "domain.rules",
    "load_rules": "domain.rules", "tidy_id": "domain.identifiers", "Position": "domain.engine",
    "Positions": "domain.engine", "settle_at": "domain.engine",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)

__version__ = "0.1.0"

__all__ = [
    "Bracket",
    "Claim",
    "ClaimError",
    "MedaidError",
    "MoneyError",
    "Placement",
    "Plan",
    "PoolState",
    "Position",
    "Positions",
    "Problem",
    "RuleBook",
    "RuleError",
    "RuleSet",
    "Segment",
    "Settlement",
    "__version__",
    "format_yuan",
    "load_rules",
    "parse_yuan",
    "place",
    "quote",
    "settle",
    "settle_at",
    "tidy_id",
]
