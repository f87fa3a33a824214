"""Rule books of docs/calculation.md *Worked examples of these rules*, as rule files, for the
ledger's tests (tests/test_ledger_extended.py and the tests beside it).

* ``HOUSEHOLD``: the shipped ``key-inpatient`` brackets (70% of 1,000-10,000, 85% of
  10,000-50,000, 95% above; claim mode; annual cap 100,000) under a household cap pool
  ``household`` of 10,000 a year;
* ``SHARED``: ``inpatient`` (own pool, year mode, 70% above 1,000) and ``outpatient`` (own pool,
  year mode, 60% above 200), both bound by the cap pool ``medical``, 5,000 a year per person;
* ``SECOND``: ``key-inpatient`` with a second stage in pool ``burden``, year mode, 50% of the
  year's burden above 5,000, annual cap 20,000; ``NON_COMPLIANT`` the same counting the
  non-compliant cost; ``FULL`` a second stage of 100% from 0 counting it.
"""

from __future__ import annotations

from medaid.domain.rules import RuleBook, parse_rule_set

HEAD = '''id = "worked"
version = "1"
valid_from = 2024-01-01
rounding = { unit = "fen", method = "half-up" }

[groups]
key = ["特困人员"]

[kinds]
inpatient = ["住院"]
outpatient = ["门诊"]
'''

KEY_BRACKETS = '''brackets = [
  { from = "1000",  to = "10000", rate = "70%" },
  { from = "10000", to = "50000", rate = "85%" },
  { from = "50000",               rate = "95%" },
]
'''


def plan(name: str, kind: str, accumulate: str, rest: str, pool: str | None = None) -> str:
    """A plan of key recipients for ``kind``, in its own pool (``pool``, else the kind)."""
    return f'''
[[plans]]
name = "{name}"
match = {{ group = ["key"], kind = ["{kind}"] }}
pool = "{pool or kind}"
accumulate = "{accumulate}"
''' + rest


def second(rest: str, *, include: bool = False, brackets: str = '[ { from = "5000", rate = "50%" } ]') -> str:
    """A second stage in pool ``burden``, year mode."""
    return f'''
[plans.second]
pool = "burden"
accumulate = "year"
include_non_compliant = {str(include).lower()}
{rest}brackets = {brackets}
'''


KEY_INPATIENT = 'annual_cap = "100000"\n'

HOUSEHOLD = HEAD + '''
[caps.household]
annual = "10000"
per = "household"
''' + plan("key-inpatient", "inpatient", "claim", KEY_INPATIENT + 'caps = ["household"]\n' + KEY_BRACKETS)

SHARED = HEAD + '''
[caps.medical]
annual = "5000"
''' + plan("inpatient", "inpatient", "year", 'caps = ["medical"]\nbrackets = [ { from = "1000", rate = "70%" } ]\n') \
    + plan("outpatient", "outpatient", "year", 'caps = ["medical"]\nbrackets = [ { from = "200", rate = "60%" } ]\n')

_KEY = plan("key-inpatient", "inpatient", "claim", KEY_INPATIENT + KEY_BRACKETS)
SECOND = HEAD + _KEY + second('annual_cap = "20000"\n')
NON_COMPLIANT = HEAD + _KEY + second('annual_cap = "20000"\n', include=True)
FULL = HEAD + _KEY + second("", include=True, brackets='[ { from = "0", rate = "100%" } ]')

#: ``HOUSEHOLD`` with a second stage (pool ``burden``, year mode, 50% of the year's burden above
#: 5,000 counting non-compliant costs, annual cap 20,000, not bound by the household pool): the
#: rules of docs/desk.md *Households, attributes and the second stage at the desk*.
HOUSEHOLD_SECOND = HOUSEHOLD + second('annual_cap = "20000"\n', include=True)

#: Every rule at once, for the generated sequences (tests/test_ledger_extended.py): a household
#: cap pool of 30,000 and a per-person cap pool ``medical`` of 20,000; ``inpatient`` (claim mode,
#: the shipped brackets, annual cap 100,000) bound by both, with a second stage (year mode, 50%
#: of the year's burden above 5,000 counting non-compliant costs, annual cap 8,000) bound by the
#: household pool; ``outpatient`` (year mode, 60% above 200, claim cap 3,000) bound by
#: ``medical`` only, so its claims need no household id.
COMBINED = HEAD + '''
[caps.household]
annual = "30000"
per = "household"

[caps.medical]
annual = "20000"
''' + plan("inpatient", "inpatient", "claim", KEY_INPATIENT + 'caps = ["household", "medical"]\n' + KEY_BRACKETS) \
    + second('annual_cap = "8000"\ncaps = ["household"]\n', include=True) \
    + plan("outpatient", "outpatient", "year",
           'claim_cap = "3000"\ncaps = ["medical"]\nbrackets = [ { from = "200", rate = "60%" } ]\n')


def book(text: str) -> RuleBook:
    """The rule book of one rule file's text."""
    return RuleBook([parse_rule_set(text.encode("utf-8"), "<test rules>")])
