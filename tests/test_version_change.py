"""A rule version that lowers the annual cap inside a benefit year (issue #17, docs/rules.md,
"Version changes inside a benefit year"): the desk, the batch and the report settle and count
the year of tests/version_change.py as worked out by hand there, and the ledger verifies clean.
(The same year on Spark: tests/test_spark.py.)"""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner

import medaid
from medaid.cli import main
from medaid.ledger.ledger import Ledger
from version_change import (
    BRACKET_COUNTS,
    CLAIMS,
    CLAIMS_CAPPED,
    EXPECTED,
    PERSONS_AT_ANNUAL_CAP,
    claims_csv,
    write_rules,
)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    return write_rules(tmp_path_factory.mktemp("rules"))


@pytest.fixture(scope="module")
def book(rules_dir):
    return medaid.load_rules(rules_dir)


def claims():
    return [medaid.Claim.from_yuan(claim_id=c, person_id=p, date=d, self_pay=a, group="key", kind="inpatient")
            for c, p, d, a in CLAIMS]


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory, book):
    path = tmp_path_factory.mktemp("desk") / "desk.sqlite3"
    with Ledger(path) as lg:
        for c in claims():  # in date order within each person, as a desk would meet them
            lg.settle(c, book)
    return path


def test_the_desk_settles_the_year_as_worked_by_hand(ledger_path):
    with Ledger(ledger_path) as lg:
        got = {e.claim_id: (e.relief, e.bracket_relief, e.capped_by, e.bracket, e.rule_version)
               for e in lg.entries()}
    assert got == EXPECTED


def test_the_scalar_engine_settles_the_year_as_worked_by_hand(book):
    got = {s.claim_id: (s.relief, s.bracket_relief, s.capped_by, s.bracket, s.rule_version)
           for s in medaid.settle(claims(), book)}
    assert got == EXPECTED


def test_a_ledger_that_went_through_a_lowered_cap_verifies_clean(ledger_path):
    # P1 holds 71,600 of relief against the 50,000 cap of version 2019.2 after 1 October:
    # healthy, since no row after the change added relief past the cap in force for it
    with Ledger(ledger_path) as lg:
        v = lg.verify()
    assert v.problems == () and v.entries == len(CLAIMS)
    code, out = run("ledger", "verify", "--ledger", ledger_path)
    assert code == 0, out


@pytest.fixture(scope="module")
def batch(tmp_path_factory, rules_dir):
    d = tmp_path_factory.mktemp("batch")
    out = d / "results.csv"
    code, text = run("batch", claims_csv(d / "claims.csv"), "-o", out, "--rules", rules_dir, "--json")
    assert code == 0, text
    return out, json.loads(text)


def test_the_batch_settles_the_year_as_worked_by_hand(batch):
    out, _ = batch
    res = pl.read_csv(out, infer_schema=False)
    got = {r["claim_id"]: (medaid.parse_yuan(r["relief"]), medaid.parse_yuan(r["bracket_relief"]),
                           r["capped_by"], int(r["bracket"]), r["rule_version"]) for r in res.iter_rows(named=True)}
    assert got == EXPECTED


def test_the_batch_totals_count_the_capped_claims_counted_by_hand(batch):
    _, summary = batch
    total = summary["totals"]["total"] if "totals" in summary else summary["total"]
    assert (total["claims_capped"], total["persons_at_annual_cap"]) == (CLAIMS_CAPPED, PERSONS_AT_ANNUAL_CAP)


@pytest.mark.parametrize("source", ["results", "ledger"])
def test_the_report_counts_the_capped_claims_and_brackets_counted_by_hand(batch, ledger_path, source):
    args = (batch[0],) if source == "results" else ("--ledger", ledger_path)
    code, out = run("report", *args, "--json")
    assert code == 0, out
    rep = json.loads(out)
    figures = {f["key"]: f["value"] for f in rep["figures"]}
    assert figures["capped_claims"] == CLAIMS_CAPPED
    assert figures["persons_at_annual_cap"] == PERSONS_AT_ANNUAL_CAP
    assert figures["persons_capped_any_limit"] == PERSONS_AT_ANNUAL_CAP  # no other limit bound this year
    assert [row["claims"] for row in rep["tables"]["brackets"]["rows"]] == BRACKET_COUNTS
