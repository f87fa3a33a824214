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

And the pieces of rule files the tests of these rules share (tests/test_schemes_worked.py,
tests/test_batch_extended.py, tests/test_cli_claim_fields.py, the service's): ``COUNTY_HEAD``,
``KEY_BRACKETS`` (the shipped ``key-inpatient`` brackets), :func:`cap_pool`, :func:`plan`,
:func:`second`, :func:`shared` and :func:`household` (the rules of ``SHARED`` and ``HOUSEHOLD``
for any group), and ``LEVELS`` (the hospital level as a claim attribute, ``LEVEL_ATTRIBUTE``, and its plans).
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


#: The head of the worked examples' rule files (tests/test_schemes_worked.py,
#: tests/test_batch_extended.py): no groups or kinds, so that claims give the codes.
COUNTY_HEAD = '''
id = "county"
version = "2024.1"
valid_from = 2024-01-01
'''


def cap_pool(name: str, annual: str, per: str = "person") -> str:
    """A cap pool ``[caps.NAME]`` of ``annual`` yuan a year per person or household."""
    return f'''
[caps.{name}]
annual = "{annual}"
per = "{per}"
'''


def plan(name: str, kind: str, accumulate: str | None, rest: str, pool: str | None = None, *,
         group: str = "key", match: str = "") -> str:
    """A plan of ``group`` (key recipients) for ``kind``, in its own pool (``pool``, else the
    kind), in ``accumulate`` mode (``None``: the default, claim); ``match`` adds to its match
    (``, level = ["tertiary"]``)."""
    mode = "" if accumulate is None else f'accumulate = "{accumulate}"\n'
    return f'''
[[plans]]
name = "{name}"
match = {{ group = ["{group}"], kind = ["{kind}"]{match} }}
pool = "{pool or kind}"
''' + mode + rest


def second(rest: str, *, include: bool = False, brackets: str = '[ { from = "5000", rate = "50%" } ]',
           pool: str = "burden") -> str:
    """A second stage in ``pool`` (``burden``), year mode."""
    return f'''
[plans.second]
pool = "{pool}"
accumulate = "year"
include_non_compliant = {str(include).lower()}
{rest}brackets = {brackets}
'''


def shared(inpatient_pool: str = "inpatient", outpatient_pool: str = "outpatient", *, group: str = "key",
           prefix: str = "") -> str:
    """``inpatient`` (year mode, 70% above 1,000) and ``outpatient`` (year mode, 60% above 200)
    of ``group``, named ``prefix`` + kind, in the pools given, both bound by the cap pool
    ``medical`` of 5,000 a year per person (docs/calculation.md, *Shared caps*)."""
    bound = 'caps = ["medical"]\n'
    return cap_pool("medical", "5000") \
        + plan(prefix + "inpatient", "inpatient", "year", bound + 'brackets = [ { from = "1000", rate = "70%" } ]\n',
               inpatient_pool, group=group) \
        + plan(prefix + "outpatient", "outpatient", "year", bound + 'brackets = [ { from = "200", rate = "60%" } ]\n',
               outpatient_pool, group=group)


def household(name: str = "key-inpatient", pool: str = "inpatient", *, group: str = "key") -> str:
    """The shipped inpatient brackets (claim mode, annual cap 100,000) for ``group`` under a
    household cap pool ``household`` of 10,000 a year."""
    return cap_pool("household", "10000", "household") \
        + plan(name, "inpatient", "claim", KEY_INPATIENT + 'caps = ["household"]\n' + KEY_BRACKETS, pool, group=group)


#: The hospital level as a claim attribute (docs/calculation.md, *Worked examples of these
#: rules*): key recipients' stays 80% above 1,000 at primary and secondary hospitals, 70% at
#: tertiary ones.
LEVEL_ATTRIBUTE = '''
[attributes.level]
title = "Hospital level (医院等级)"
columns = ["hospital_level", "医院等级"]
values = { primary = ["一级"], secondary = ["二级"], tertiary = ["三级"] }
'''
LEVELS = LEVEL_ATTRIBUTE \
    + plan("county", "inpatient", None, 'brackets = [ { from = "1000", rate = "80%" } ]\n',
           match=', level = ["primary", "secondary"]') \
    + plan("tertiary", "inpatient", None, 'brackets = [ { from = "1000", rate = "70%" } ]\n',
           match=', level = ["tertiary"]')


KEY_INPATIENT = 'annual_cap = "100000"\n'

HOUSEHOLD = HEAD + household()

SHARED = HEAD + shared()

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
