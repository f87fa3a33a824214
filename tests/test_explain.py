"""The desk explanation is the library's (medaid.report.explain): any front end renders the same
text and JSON as ``medaid settle`` / ``medaid quote``; the desk commands are module-level click
commands that can be imported and run one by one (issue #12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from unittest import mock

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st
from tabulate import tabulate

import medaid
import medaid.report.explain as explain_module
from medaid.report.explain import explain, table, text_table

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(RULES)


def stay(self_pay: str, claim_id: str = "-") -> medaid.Claim:
    return medaid.Claim.from_yuan(claim_id=claim_id, person_id="P1", date="2024-05-03", self_pay=self_pay,
                                  group="key", kind="inpatient")


def test_a_30000_yuan_stay_is_explained_segment_by_segment_with_its_basis(book):
    from medaid.report.explain import explain

    r = medaid.quote(stay("30000"), book, medaid.PoolState(0, 0))
    text = explain(r, stay("30000"), book, "en", "Quote")
    # 70% of 1,000-10,000 = 6,300; 85% of 10,000-30,000 = 17,000; 6,300 + 17,000 = 23,300 relieved,
    # 30,000 - 23,300 = 6,700 paid; 100,000 - 23,300 = 76,700 of the annual cap left
    for part in ["Quote", "below the threshold", "6,300.00", "17,000.00", "23,300.00", "6,700.00",
                 "76,700.00", "cq-county-medical-aid 2019.1", "Legal basis: County health-poverty"]:
        assert part in text, part
    zh = explain(r, stay("30000"), book, "zh", "试算")
    assert "救助金额" in zh and "政策依据：County health-poverty" in zh


def test_the_json_dict_carries_the_plans_legal_basis(book):
    from medaid.report.explain import explain_dict

    d = explain_dict(medaid.quote(stay("30000"), book, medaid.PoolState(0, 0)), book)
    assert (d["relief"], d["patient_pays"]) == ("23300.00", "6700.00")
    assert d["basis"].startswith("County health-poverty")


def test_the_cli_prints_the_librarys_explanation_byte_for_byte(book):
    from medaid.cli.desk import quote
    from medaid.report.explain import explain, explain_dict

    args = ["--person", "P1", "--self-pay", "30000", "--date", "2024-05-03", "--group", "key",
            "--kind", "inpatient", "--ytd-self-pay", "0", "--ytd-relief", "0", "--rules", RULES]
    r = medaid.quote(stay("30000"), book, medaid.PoolState(0, 0))
    out = CliRunner().invoke(quote, [*args, "--lang", "zh"])  # the command alone, without the group
    assert out.exit_code == 0, out.output
    assert out.output == explain(r, stay("30000"), book, "zh", "试算（未记账）") + "\n"
    got = json.loads(CliRunner().invoke(quote, [*args, "--json"]).output)
    want = explain_dict(r, book)
    assert got["claim_id"] is None  # a quote without --claim-id has none (the library's "-" is a stand-in)
    assert {k: got[k] for k in want if k != "claim_id"} == {k: v for k, v in want.items() if k != "claim_id"}


def test_a_settlement_from_the_ledger_is_explained_like_its_quote(book, tmp_path):
    from medaid.ledger import Ledger
    from medaid.report.explain import explain

    with Ledger(tmp_path / "desk.sqlite3") as lg:
        e = lg.settle(stay("30000", "C1"), book).entry
    q = medaid.quote(stay("30000", "C1"), book, medaid.PoolState(0, 0))
    assert explain(e, e.claim(), book, "en", "T") == explain(q, stay("30000", "C1"), book, "en", "T")


def test_the_explanation_imports_neither_click_nor_tabulate_until_used():
    code = "import sys, medaid.report.explain; print([m for m in ('click', 'tabulate') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_each_desk_command_is_a_module_level_click_command():
    from medaid.cli import desk

    for name in ("settle", "quote", "reverse", "history", "rules", "ledger"):
        assert isinstance(getattr(desk, name), click.Command), name
    # ledger migrate and ledger copy came with the ledger on PostgreSQL (docs/desk.md)
    assert set(desk.rules.commands) == {"check", "show"} and set(desk.ledger.commands) == {"verify", "migrate", "copy"}
    assert desk.ledger.commands["migrate"] is desk.ledger_migrate and desk.ledger.commands["copy"] is desk.ledger_copy


# -- the explanation's tables are tabulate's, drawn without it ----------------------------------

# text a cell may hold: ASCII, Chinese (two columns wide), a full-width digit, an accent that
# combines (no width of its own), spaces and a tab around it, a line feed (tabulate's own job)
_CELL = st.text(st.sampled_from(list("aZ09 .,-/()%\u2013\u91cd\u70b9\u6551\u52a9\uff11\u00e9\u0301\t\n")),
                max_size=12)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), ncols=st.integers(1, 4), nrows=st.integers(1, 5), with_headers=st.booleans(),
       ruled=st.booleans())
def test_the_tables_are_drawn_exactly_as_tabulate_draws_them(data, ncols, nrows, with_headers, ruled):
    rows = [[data.draw(_CELL) for _ in range(ncols)] for _ in range(nrows)]
    headers = [data.draw(_CELL) for _ in range(ncols)] if with_headers else None
    align = data.draw(st.none() | st.lists(st.sampled_from(["left", "right"]), min_size=ncols, max_size=ncols))
    # ruled: tabulate's simple table even without headers (dashes above and below the rows)
    kwargs = {"disable_numparse": True, "tablefmt": "simple" if with_headers or ruled else "plain"}
    if align is not None:
        kwargs["colalign"] = tuple(align)
    drawn = text_table(rows, headers, align, ruled=ruled)
    if drawn is not None:  # a table of one-line printable text: drawn by medaid, as tabulate draws it
        assert drawn == (tabulate(rows, headers=headers, **kwargs) if with_headers else tabulate(rows, **kwargs))
    else:  # anything else (a line feed or a tab in a cell): left to tabulate
        assert any("\n" in c or "\t" in c for c in [*sum(rows, []), *(headers or [])])
    with mock.patch.object(explain_module, "text_table", lambda *a: None):
        by_tabulate = table(rows, headers, align)
    assert table(rows, headers, align) == by_tabulate


def test_a_settlements_explanation_is_drawn_without_tabulate_and_reads_the_same(book):
    r = medaid.quote(stay("30000"), book, medaid.PoolState(0, 0))
    for lang in ("en", "zh"):
        with mock.patch("tabulate.tabulate", side_effect=AssertionError("tabulate was used")):
            drawn = explain(r, stay("30000"), book, lang, "Quote")
        with mock.patch.object(explain_module, "text_table", lambda *a: None):  # tabulate draws every table
            assert explain(r, stay("30000"), book, lang, "Quote") == drawn
