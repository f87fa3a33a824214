"""Spark on a rule book that uses the rules real schemes need (docs/spark.md, *Extended rule
sets*): claims are bucketed by household when the book has a cap pool per household, each bucket
is settled by the local batch's own code, and every claim gets the local batch's figures, the
spec's worked examples among them; an opening from earlier results carries the cap pools over.

One Spark run for the batch (CSV in, CSV folder out) and one for the opening; the expected
values come from the local batch (``medaid batch`` on the same file, itself checked against the
engine and the Fraction reference in tests/test_batch_extended.py) and from the hand-worked
figures of the spec.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'medaid[spark]')")
if shutil.which("java") is None and not __import__("os").environ.get("JAVA_HOME"):
    pytest.skip("Java is not installed: Spark needs a JVM (Java 17)", allow_module_level=True)

import polars as pl  # noqa: E402

import medaid  # noqa: E402
import reference_schemes as ref  # noqa: E402
from medaid.batch.opening import OPENING_FIELDS, opening_from  # noqa: E402
from medaid.batch.run import results_for_output, settle_file  # noqa: E402
from medaid.domain.rules import load_rules  # noqa: E402
from medaid.io.columns import EXTENDED_RESULT_FIELDS, RESULT_FIELDS  # noqa: E402
from medaid.io.results import read_results  # noqa: E402
from medaid.io.writers import write_frame  # noqa: E402
from medaid.spark.job import run_batch  # noqa: E402
from strategies_schemes import load, scheme_claims, scheme_rule_sets, toml_text  # noqa: E402
from test_batch_extended import WORKED, WORKED_CSV, WORKED_RULES  # noqa: E402


def many_households(seed: int, households: int = 60) -> str:
    """Rows for the worked rules: households of 1-4 members with several stays each (group h,
    household cap 10,000), persons sharing the outpatient/inpatient cap (group a), second
    stages (groups s and n), over 2024; claim ids not in date order."""
    rng = random.Random(seed)
    rows = []
    for h in range(households):
        for m in range(rng.randint(1, 4)):
            for _ in range(rng.randint(1, 4)):
                group = rng.choice("hhhans")
                kind = rng.choice(["inpatient", "outpatient"]) if group == "a" else "inpatient"
                day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                pay = rng.choice([rng.randint(0, 30_000), rng.randint(500, 3_000), 10_000])
                nc = str(rng.randint(0, 5_000)) if group == "n" else ""
                rows.append(f"G{rng.randrange(10**9):09d},H{h}M{m},H{h},{day},{pay},{nc},{group},{kind},")
    return "".join(r + "\n" for r in rows)


def test_spark_gives_the_local_batch_and_the_hand_figures_bucketed_by_household(spark, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "county.toml").write_text(WORKED_RULES, encoding="utf-8")
    claims = tmp_path / "claims.csv"
    claims.write_text(WORKED_CSV + many_households(15), encoding="utf-8")
    local = results_for_output(settle_file(claims, load_rules(rules)))
    local_csv = tmp_path / "local.csv"
    write_frame(local, local_csv)
    out = tmp_path / "spark.csv"
    summary = run_batch(str(claims), str(out), str(rules), buckets=7)
    assert summary.rejected == 0 and summary.settled == local.height > 300
    got = pl.concat([pl.read_csv(f, infer_schema=False) for f in sorted(out.glob("part-*.csv"))])
    want = pl.read_csv(local_csv, infer_schema=False)
    assert got.columns[-len(EXTENDED_RESULT_FIELDS) - len(RESULT_FIELDS):] == [*RESULT_FIELDS, *EXTENDED_RESULT_FIELDS]
    compared = ["claim_id", *RESULT_FIELDS, *EXTENDED_RESULT_FIELDS]
    assert got.select(compared).sort("claim_id").equals(want.select(compared).sort("claim_id"))
    for row in got.filter(pl.col("claim_id").is_in(list(WORKED))).iter_rows(named=True):
        figures = (row["relief"], row["patient_pays"], row["capped_by"], row["second_relief"],
                   row["second_capped_by"], row["caps"])
        assert figures == WORKED[row["claim_id"]], row["claim_id"]
    # every household's relief under its cap pool stays within 10,000 (Σ of its "household=" parts)
    used = (got.filter(pl.col("caps").str.starts_with("household="))
            .select(pl.col("household_id"), pl.col("caps").str.extract(r"=([0-9.]+)$").str.replace(r"\.", "")
                    .cast(pl.Int64).alias("u"))
            .group_by("household_id").agg(pl.col("u").sum()))
    assert used["u"].max() <= 1_000_000


def march_and_may(tmp_path: Path) -> tuple[Path, medaid.RuleBook, Path, Path]:
    """The worked rules in a folder, and the worked claims split into March (and before) and May."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "county.toml").write_text(WORKED_RULES, encoding="utf-8")
    lines = WORKED_CSV.splitlines()
    first = tmp_path / "march.csv"
    first.write_text("\n".join(x for x in lines if ",2024-05-" not in x) + "\n", encoding="utf-8")
    later = tmp_path / "may.csv"
    later.write_text(lines[0] + "\n" + "\n".join(x for x in lines if ",2024-05-" in x) + "\n", encoding="utf-8")
    return rules, load_rules(rules), first, later


def test_spark_opens_from_earlier_results_as_the_local_batch(spark, tmp_path):
    rules, book, first, later = march_and_may(tmp_path)
    earlier = tmp_path / "march.results.csv"
    write_frame(results_for_output(settle_file(first, book)), earlier)
    opening = opening_from([(str(earlier), read_results(earlier, required=OPENING_FIELDS))])
    out = tmp_path / "may.out.csv"
    summary = run_batch(str(later), str(out), str(rules), opening=opening, buckets=3)
    got = pl.concat([pl.read_csv(f, infer_schema=False) for f in sorted(out.glob("part-*.csv"))])
    # C3: 700.00 by its brackets, but March's C1 and C2 used the household's 10,000
    assert got.select("claim_id", "relief", "capped_by", "caps").rows() == [
        ("C3", "0.00", "cap:household", "household=0.00")]
    # so its person M is stopped by a cap pool: 1 in the totals and the manifest (overall line only)
    assert (summary.total.persons_at_cap_pool, summary.total.persons_at_annual_cap) == (1, 0)
    assert summary.to_dict()["total"]["persons_at_cap_pool"] == 1
    assert "persons_at_cap_pool" not in summary.to_dict()["by_plan"][0]
    manifest = json.loads((tmp_path / "may.out.csv.manifest.json").read_text(encoding="utf-8"))
    assert manifest["totals"]["persons_at_cap_pool"] == 1


def test_spark_opens_from_the_ledger_the_desks_recorded(spark, tmp_path):
    """``medaid batch --engine spark --ledger``: March recorded in a desk's ledger
    (``record_file``, as ``medaid batch --record``), May settled by Spark opened from the
    ledger's results.  By hand, as from March's results file above: C3's 700.00 finds the
    household's 10,000 spent by C1 and C2, so 0.00 by ``cap:household``."""
    from medaid.batch.opening import ledger_frame
    from medaid.batch.record import record_file
    from medaid.ledger import open_ledger
    from medaid.ledger.export import load_ledger_results

    rules, book, first, later = march_and_may(tmp_path)
    ledger = tmp_path / "desk.sqlite3"
    with open_ledger(ledger) as db:
        recorded = record_file(first, db, book)
    assert recorded.run.rejected == 0
    opening = opening_from([(str(ledger), ledger_frame(load_ledger_results(ledger)))])
    out = tmp_path / "may.out.csv"
    summary = run_batch(str(later), str(out), str(rules), opening=opening, buckets=3)
    got = pl.concat([pl.read_csv(f, infer_schema=False) for f in sorted(out.glob("part-*.csv"))])
    assert got.select("claim_id", "relief", "capped_by", "caps").rows() == [
        ("C3", "0.00", "cap:household", "household=0.00")]
    assert summary.total.persons_at_cap_pool == 1


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_spark_equals_the_local_batch_and_the_reference_on_generated_rules_and_claims(spark, data):
    """Generated rule sets using the new rules (attributes, grants, cap pools per person and per
    household, second stages) and claims written to a CSV: Spark gives every claim the local
    batch's result columns, and the independent Fraction reference's relief."""
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    claims = data.draw(scheme_claims(parsed), "claims")
    attrs = sorted(rs.get("attributes", {}))
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        (folder / "rules").mkdir()
        (folder / "rules" / "r.toml").write_text(toml_text(rs), encoding="utf-8")
        head = ["claim_id", "person_id", "household_id", "date", "self_pay", "non_compliant", "group", "kind", *attrs]
        lines = [",".join(head)]
        for c in claims:
            cells = [c["claim_id"], c["person_id"], c.get("household_id", ""), c["date"].isoformat(),
                     c["self_pay"], c.get("non_compliant", ""), c.get("group", ""), c.get("kind", "")]
            cells += [c.get("attributes", {}).get(a, "") for a in attrs]
            lines.append(",".join(cells))
        source = folder / "claims.csv"
        source.write_text("\n".join(lines) + "\n", encoding="utf-8")
        local = results_for_output(settle_file(source, load_rules(folder / "rules")))
        write_frame(local, folder / "local.csv")
        out = folder / "spark.csv"
        run_batch(str(source), str(out), str(folder / "rules"), buckets=3)
        got = pl.concat([pl.read_csv(f, infer_schema=False) for f in sorted(out.glob("part-*.csv"))])
        want = pl.read_csv(folder / "local.csv", infer_schema=False)
    extra = [c for c in EXTENDED_RESULT_FIELDS if c in want.columns]
    compared = ["claim_id", *RESULT_FIELDS, *extra]
    assert got.select(compared).sort("claim_id").equals(want.select(compared).sort("claim_id"))
    reference = ref.settle([parsed], claims)
    for cid, relief in got.select("claim_id", "relief").iter_rows():
        assert medaid.parse_yuan(relief) == reference[cid].relief, cid
