"""The batch on rule sets that use the rules real schemes need (docs/calculation.md, *Rules real
schemes need*; docs/batch.md, *Extended rule sets*): ``settle_frame`` and ``medaid batch`` give,
claim by claim, what the engine gives and what the independent Fraction reference
(``tests/reference_schemes.py``) gives, on generated rule sets and claims; the refused claims are
rejects with their line and field; the spec's worked examples come out of a CSV file as worked
by hand.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import medaid
import reference_schemes as ref
from extended_books import COUNTY_HEAD, KEY_BRACKETS, KEY_INPATIENT, LEVEL_ATTRIBUTE, household, plan, second, shared
from medaid.batch.settle import settle_frame
from medaid.io.columns import EXTENDED_RESULT_FIELDS, RESULT_FIELDS
from medaid.io.results import read_results
from strategies_schemes import claims_refused, load, raw_claims, scheme_rule_sets

ROOT = Path(__file__).resolve().parents[1]

FAST = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def fen_of(text: str | None) -> int | None:
    return None if text is None else medaid.parse_yuan(text)


def claims_frame(claims: list[dict[str, Any]], attributes: list[str]) -> pl.DataFrame:
    """The claims as a batch frame: ``row`` (line 2 onwards), the claim fields (money in fen) and
    a column per attribute named by it (as the readers name them)."""
    cols: dict[str, Any] = {
        "row": pl.Series([i + 2 for i in range(len(claims))], dtype=pl.Int64),
        "claim_id": pl.Series([c["claim_id"] for c in claims], dtype=pl.String),
        "person_id": pl.Series([c["person_id"] for c in claims], dtype=pl.String),
        "date": pl.Series([c["date"] for c in claims], dtype=pl.Date),
        "self_pay": pl.Series([fen_of(c["self_pay"]) for c in claims], dtype=pl.Int64),
        "group": pl.Series([c.get("group") for c in claims], dtype=pl.String),
        "kind": pl.Series([c.get("kind") for c in claims], dtype=pl.String),
        "household_id": pl.Series([c.get("household_id") for c in claims], dtype=pl.String),
        "non_compliant": pl.Series([fen_of(c.get("non_compliant")) for c in claims], dtype=pl.Int64),
    }
    for a in attributes:
        cols[a] = pl.Series([c.get("attributes", {}).get(a) for c in claims], dtype=pl.String)
    return pl.DataFrame(cols)


#: Result columns compared with the engine's Settlement of the same name.
SAME_AS_ENGINE = ("plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief", "capped_by",
                  "bracket", "ytd_self_pay", "ytd_relief", "rule_set_id", "rule_version", "second_relief",
                  "second_capped_by", "second_pool", "burden", "ytd_burden", "ytd_second_relief")
#: Result columns compared with the Fraction reference.
SAME_AS_REFERENCE = ("plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief",
                     "capped_by", "second_relief", "second_capped_by", "ytd_self_pay", "ytd_relief")


@FAST
@given(st.data())
def test_settle_frame_equals_the_engine_and_the_reference_claim_by_claim(data):
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    claims = data.draw(raw_claims(rs), "claims")
    refused = {c["claim_id"] for c in claims_refused([parsed], claims)}
    good = [c for c in claims if c["claim_id"] not in refused]
    frame = claims_frame(claims, sorted(rs.get("attributes", {})))
    results, rejects = settle_frame(frame, book)
    assume(book.extended)  # (nearly every rule set drawn uses a rule of its kind)
    assert results.columns == [*frame.columns, *RESULT_FIELDS, *EXTENDED_RESULT_FIELDS]
    # refused claims are rejects on their own line, naming the field the engine names
    assert sorted(rejects["claim_id"].to_list()) == sorted(refused)
    line = {c["claim_id"]: i + 2 for i, c in enumerate(claims)}
    assert all(line[cid] == row for row, cid in rejects.select("row", "claim_id").iter_rows())
    assert set(rejects["field"].to_list()) <= {"group/kind", "household_id", "date", "level", "place"} | set(
        rs.get("attributes", {}))
    # the rest: as the engine settles them, and as the reference does
    assert results["claim_id"].to_list() == [c["claim_id"] for c in good]
    engine = medaid.settle([medaid.Claim.from_yuan(**c) for c in good], book)
    want = ref.settle([parsed], good)
    for row, r in zip(results.iter_rows(named=True), engine):
        assert {k: row[k] for k in SAME_AS_ENGINE} == {k: getattr(r, k) for k in SAME_AS_ENGINE}, r.claim_id
        assert row["rule_hash"] == r.rule_hash
        w = want[r.claim_id]
        assert {k: row[k] for k in SAME_AS_REFERENCE} == {k: getattr(w, k) for k in SAME_AS_REFERENCE}
        assert row["relief"] + row["patient_pays"] == row["self_pay"]


@FAST
@given(st.data())
def test_order_of_the_rows_changes_no_claims_relief(data):
    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    claims = data.draw(raw_claims(rs), "claims")
    shuffled = data.draw(st.permutations(claims), "order")
    attrs = sorted(rs.get("attributes", {}))
    a, _ = settle_frame(claims_frame(claims, attrs), book)
    b, _ = settle_frame(claims_frame(shuffled, attrs), book)
    key = [c for c in ("claim_id", "relief", "second_relief", "capped_by", "caps") if c in a.columns]
    assert a.select(key).sort("claim_id").equals(b.select(key).sort("claim_id"))


# --------------------------------------------------------------------------------------------
# the spec's worked examples through ``medaid batch`` on a CSV file

#: The worked examples' rules side by side, a group each: ``a`` shares the cap pool ``medical``
#: between inpatient and outpatient, ``h`` a household cap pool, ``s`` a second stage, ``n`` a
#: second stage counting non-compliant costs (tests/extended_books.py); and the hospital level.
WORKED_RULES = COUNTY_HEAD + LEVEL_ATTRIBUTE + shared("a-inpatient", "a-outpatient", group="a", prefix="a-") \
    + household("h-inpatient", "h-inpatient", group="h") \
    + plan("s-inpatient", "inpatient", None, KEY_INPATIENT + KEY_BRACKETS, "s-inpatient", group="s") \
    + second('annual_cap = "20000"\n') \
    + plan("n-inpatient", "inpatient", None, KEY_INPATIENT + KEY_BRACKETS, "n-inpatient", group="n") \
    + second("", include=True, pool="burden-n")

#: claim_id, person_id, household_id, date, self_pay, non_compliant, group, kind, 医院等级
WORKED_CSV = """claim_id,person_id,household_id,date,self_pay,non_compliant,group,kind,医院等级
I2,PA,,2024-03-01,8000,,a,inpatient,三级
O1,PA,,2024-01-10,800,,a,outpatient,一级
I1,PA,,2024-02-01,1000,,a,inpatient,
O2,PA,,2024-04-01,500,,a,outpatient,二级
C3,M,H1,2024-05-01,2000,,h,inpatient,
C2,S,H1,2024-03-01,10000,,h,inpatient,
C1,M,H1,2024-03-01,10000,,h,inpatient,
A,PS,,2024-03-01,30000,,s,inpatient,
B,PS,,2024-04-01,10000,,s,inpatient,
N1,PN,,2024-03-01,10000,4000,n,inpatient,
"""

#: By hand, from docs/calculation.md *Worked examples of these rules* (yuan as the file has them).
WORKED = {
    #      relief,     patient,    capped_by,        second,    second_capped_by, caps
    "O1": ("360.00", "440.00", None, "0.00", None, "medical=360.00"),  # (800 − 200) × 60%
    "I1": ("0.00", "1000.00", None, "0.00", None, "medical=0.00"),  # own threshold not passed
    "I2": ("4640.00", "3360.00", "cap:medical", "0.00", None, "medical=4640.00"),  # 5,600 cut to 5,000 − 360
    "O2": ("0.00", "500.00", "cap:medical", "0.00", None, "medical=0.00"),  # 300, no room left
    "C1": ("6300.00", "3700.00", None, "0.00", None, "household=6300.00"),
    "C2": ("3700.00", "6300.00", "cap:household", "0.00", None, "household=3700.00"),  # 10,000 − 6,300
    "C3": ("0.00", "2000.00", "cap:household", "0.00", None, "household=0.00"),
    "A": ("24150.00", "5850.00", None, "850.00", None, None),  # 23,300 + (6,700 − 5,000) × 50%
    "B": ("8150.00", "1850.00", None, "1850.00", None, None),  # 6,300 + 5,400 × 50% − 850
    "N1": ("7650.00", "2350.00", None, "1350.00", None, None),  # 6,300 + (3,700 + 4,000 − 5,000) × 50%
}


def batch(*args: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from medaid.cli import main

    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def worked(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "county.toml").write_text(WORKED_RULES, encoding="utf-8")
    claims = tmp_path / "claims.csv"
    claims.write_text(WORKED_CSV, encoding="utf-8")
    return rules, claims


def test_the_worked_examples_come_out_of_medaid_batch_as_by_hand(worked, tmp_path):
    rules, claims = worked
    out = tmp_path / "results.csv"
    code, stdout, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(rules))
    assert code == 0, stderr
    assert "rows read 10 = settled 10 + rejected 0" in stdout
    got = pl.read_csv(out, infer_schema=False, encoding="utf8-lossy")
    assert got.columns[-len(EXTENDED_RESULT_FIELDS):] == list(EXTENDED_RESULT_FIELDS)
    assert got["claim_id"].to_list() == ["I2", "O1", "I1", "O2", "C3", "C2", "C1", "A", "B", "N1"]  # file order
    for row in got.iter_rows(named=True):
        figures = (row["relief"], row["patient_pays"], row["capped_by"], row["second_relief"],
                   row["second_capped_by"], row["caps"])
        assert figures == WORKED[row["claim_id"]], row["claim_id"]
    burden = dict(zip(got["claim_id"], got["burden"]))
    assert (burden["A"], burden["B"], burden["N1"]) == ("6700.00", "3700.00", "7700.00")
    assert burden["O1"] is None
    # the attribute is read into its column by the attribute's name, as its code
    assert dict(zip(got["claim_id"], got["level"]))["I2"] == "三级"  # as given (the plan records the code)
    # relief stays the total; the second stage's part is shown apart
    assert "second-stage relief" in stdout and "4,050.00" in stdout  # 850 + 1,850 + 1,350


def test_the_totals_count_the_persons_a_cap_pool_stopped_as_the_report_does(worked, tmp_path):
    """By hand from WORKED: a cap pool cut I2 and O2 (PA, cap:medical), C2 (S) and C3 (M,
    cap:household): 3 persons; no claim reached an annual cap.  The same count in the printed
    totals, the JSON, the run manifest and the report of the results."""
    rules, claims = worked
    out = tmp_path / "results.csv"
    code, stdout, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(rules), "--json")
    assert code == 0, stderr
    total = json.loads(stdout)["total"]
    assert (total["persons_at_cap_pool"], total["persons_at_annual_cap"], total["persons"]) == (3, 0, 5)
    manifest = json.loads((tmp_path / "results.csv.manifest.json").read_text(encoding="utf-8"))
    assert (manifest["totals"]["persons_at_cap_pool"], manifest["totals"]["persons_at_annual_cap"]) == (3, 0)
    code, stdout, _ = batch("batch", str(claims), "-o", str(out), "--rules", str(rules), "--lang", "zh")
    assert code == 0
    assert ["受共享限额约束的人数", "3"] in [line.split() for line in stdout.splitlines()]
    code, stdout, _ = batch("report", str(out), "--json")
    figures = {f["key"]: f["value"] for f in json.loads(stdout)["figures"]}
    assert figures["persons_at_cap_pool"] == 3


def test_plain_rules_totals_have_no_cap_pool_count(tmp_path):
    """Rules without the extended rules: the totals, JSON and manifest as before (no key, no line)."""
    claims = tmp_path / "claims.csv"
    claims.write_text("claim_id,person_id,date,self_pay,group,kind\n"
                      "P1,X,2024-03-01,30000,key,inpatient\n", encoding="utf-8")
    out = tmp_path / "results.csv"
    code, stdout, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(ROOT / "rules"), "--json")
    assert code == 0, stderr
    assert "persons_at_cap_pool" not in stdout and "second_relief" not in stdout
    assert "persons_at_cap_pool" not in (tmp_path / "results.csv.manifest.json").read_text(encoding="utf-8")
    code, stdout, _ = batch("batch", str(claims), "-o", str(out), "--rules", str(ROOT / "rules"))
    assert code == 0 and "cap pool" not in stdout


def test_worked_examples_in_json_lines_and_parquet_carry_second_relief_as_yuan(worked, tmp_path):
    rules, claims = worked
    for suffix in (".jsonl", ".parquet", ".xlsx"):
        out = tmp_path / f"results{suffix}"
        code, _, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(rules))
        assert code == 0, stderr
        back = read_results(out)
        second = dict(zip(back["claim_id"], back["second_relief"]))
        assert (second["A"], second["B"], second["N1"], second["O1"]) == (85_000, 185_000, 135_000, 0), suffix
        assert dict(zip(back["claim_id"], back["caps"]))["I2"] == "medical=4640.00"


def test_bad_rows_are_rejected_with_their_line_and_field(worked, tmp_path):
    rules, claims = worked
    text = WORKED_CSV + "X1,PX,,2024-06-01,100,,a,inpatient,四级\nX2,PY,,2024-06-01,100,,h,inpatient,\n"
    claims.write_text(text, encoding="utf-8")
    out = tmp_path / "results.csv"
    code, _, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(rules))
    assert code == 1 and not out.exists()
    assert "line 12" in stderr or ":12:" in stderr
    assert "level" in stderr and "household_id" in stderr
    code, stdout, _ = batch("batch", str(claims), "-o", str(out), "--rules", str(rules), "--on-error", "skip")
    assert "rows read 12 = settled 10 + rejected 2" in stdout
    rejects = pl.read_csv(tmp_path / "results.rejects.csv", infer_schema=False)
    assert rejects.select("line", "field").rows() == [("12", "level"), ("13", "household_id")]
    # the other claims are settled as if the refused ones were not in the file
    got = pl.read_csv(out, infer_schema=False)
    assert dict(zip(got["claim_id"], got["relief"]))["C2"] == "3700.00"


# --------------------------------------------------------------------------------------------
# opening balances: monthly files in sequence = one yearly batch

#: The per-claim results that must not depend on how the year was split into files.
PER_CLAIM = ["claim_id", "plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief",
             "capped_by", "bracket", "ytd_self_pay", "ytd_relief", *EXTENDED_RESULT_FIELDS]


@FAST
@given(st.data())
def test_months_settled_in_sequence_with_openings_equal_the_year_in_one_batch(data):
    """Each month settled with the opening of every earlier month's results, written as CSV and
    read back: pools, second pools and cap pools (per person and per household) carry over, so
    every claim gets what the one batch of the year gives it."""
    import tempfile

    from medaid.batch.opening import OPENING_FIELDS, opening_from
    from medaid.io.writers import write_frame

    rs = data.draw(scheme_rule_sets(), "rule set")
    book, _ = load([rs])
    assume(book.extended)
    claims = data.draw(raw_claims(rs, max_claims=30), "claims")
    attrs = sorted(rs.get("attributes", {}))
    whole, whole_rejects = settle_frame(claims_frame(claims, attrs), book)
    folder = Path(tempfile.mkdtemp())
    earlier: list[tuple[str, pl.DataFrame]] = []
    parts, rejected = [], []
    for y, m in sorted({(c["date"].year, c["date"].month) for c in claims}):
        month = [c for c in claims if (c["date"].year, c["date"].month) == (y, m)]
        res, rej = settle_frame(claims_frame(month, attrs), book, opening=opening_from(earlier).for_book(book))
        path = folder / f"{y}-{m:02d}.results.csv"
        write_frame(res.drop("row"), path)
        earlier.append((str(path), read_results(path, required=OPENING_FIELDS)))
        parts.append(res)
        rejected.append(rej)

    def per_claim(f: pl.DataFrame) -> pl.DataFrame:
        return f.select(pl.col(c).cast(pl.String) for c in PER_CLAIM).sort("claim_id")

    assert per_claim(pl.concat(parts, how="diagonal_relaxed")).equals(per_claim(whole))
    assert sorted(pl.concat(rejected)["claim_id"].to_list()) == sorted(whole_rejects["claim_id"].to_list())


def test_an_opening_without_the_extended_columns_is_refused_naming_the_file_and_columns(worked, tmp_path):
    rules, claims = worked
    first = tmp_path / "first.csv"
    code, _, _ = batch("batch", str(claims), "-o", str(first), "--rules", str(rules),
                       "--columns", "claim_id,person_id,date,self_pay,plan,pool,benefit_year,relief")
    assert code == 0
    code, _, stderr = batch("batch", str(claims), "-o", str(tmp_path / "again.csv"), "--rules", str(rules),
                            "--opening", str(first))
    assert code == 1
    assert "first.csv" in stderr and "second_relief" in stderr and "caps" in stderr
    assert not (tmp_path / "again.csv").exists()


def test_a_household_cap_carries_over_from_the_first_months_results(worked, tmp_path):
    rules, claims = worked
    march = "\n".join(line for line in WORKED_CSV.splitlines() if ",2024-05-" not in line) + "\n"
    may = WORKED_CSV.splitlines()[0] + "\n" + "\n".join(
        line for line in WORKED_CSV.splitlines() if ",2024-05-" in line) + "\n"
    (tmp_path / "march.csv").write_text(march, encoding="utf-8")
    (tmp_path / "may.csv").write_text(may, encoding="utf-8")
    assert batch("batch", str(tmp_path / "march.csv"), "-o", str(tmp_path / "m.csv"), "--rules", str(rules))[0] == 0
    code, stdout, stderr = batch("batch", str(tmp_path / "may.csv"), "-o", str(tmp_path / "y.csv"),
                                 "--rules", str(rules), "--opening", str(tmp_path / "m.csv"))
    assert code == 0, stderr
    got = pl.read_csv(tmp_path / "y.csv", infer_schema=False)
    # C3: M's 2,000 stay in May: 700.00 by its brackets, but C1 and C2 used the household's 10,000
    assert got.select("claim_id", "relief", "capped_by").rows() == [("C3", "0.00", "cap:household")]


# --------------------------------------------------------------------------------------------
# recalculation under new rules


def test_recalc_under_a_raised_second_stage_rate_gives_each_claims_adjustment(worked, tmp_path):
    rules, claims = worked
    first = tmp_path / "first.csv"
    assert batch("batch", str(claims), "-o", str(first), "--rules", str(rules))[0] == 0
    new_rules = tmp_path / "rules-new"
    new_rules.mkdir()
    (new_rules / "county.toml").write_text(WORKED_RULES.replace('from = "5000", rate = "50%"',
                                                                'from = "5000", rate = "60%"'), encoding="utf-8")
    out = tmp_path / "adjustments.csv"
    code, stdout, stderr = batch("recalc", str(claims), "--previous", str(first), "--rules", str(new_rules),
                                 "-o", str(out))
    assert code == 0, stderr
    adj = pl.read_csv(out, infer_schema=False)
    got = {r["claim_id"]: (r["old_second_relief"], r["new_second_relief"], r["adjustment"])
           for r in adj.iter_rows(named=True) if r["adjustment"] != "0.00"}
    assert got == {
        "A": ("850.00", "1020.00", "170.00"),  # (6,700 − 5,000) × 60%
        "B": ("1850.00", "2220.00", "370.00"),  # 5,400 × 60% − 1,020
        "N1": ("1350.00", "1620.00", "270.00"),  # (7,700 − 5,000) × 60%
    }
    assert "old second-stage relief" in stdout and "4,050.00" in stdout and "4,860.00" in stdout


# --------------------------------------------------------------------------------------------
# a ledger as the opening: the first half recorded at the desk, the second half a batch


@FAST
@given(st.data())
def test_a_year_half_in_the_ledger_and_half_in_a_batch_opened_from_it_equals_the_reference(data):
    """The claims before a drawn day settled at the desk, in (date, claim id) order, into a new
    ledger, with copies of some of them settled too and then reversed (entered twice: the
    reversals re-settle the claims after them); the claims from that day on settled by the batch
    opened from the ledger (``--ledger``: the ledger's results as an opening,
    :func:`medaid.batch.opening.ledger_frame`).  Pools, second pools and cap pools (per person
    and per household) carry over from the ledger's rows, the reversed copies count for nothing:
    every claim of the batch gets what the independent Fraction reference gives it in the whole
    year, and what the one batch of the year gives it."""
    import tempfile

    from medaid.batch.opening import ledger_frame, opening_from
    from medaid.ledger import open_ledger
    from medaid.ledger.export import load_ledger_results

    rs = data.draw(scheme_rule_sets(), "rule set")
    book, (parsed,) = load([rs])
    assume(book.extended)
    claims = data.draw(raw_claims(rs, max_claims=30), "claims")
    refused = {c["claim_id"] for c in claims_refused([parsed], claims)}
    days = sorted({c["date"] for c in claims})
    split = data.draw(st.sampled_from(days), "first day of the batch")
    first = [c for c in claims if c["date"] < split and c["claim_id"] not in refused]
    second_half = [c for c in claims if c["date"] >= split]
    copies = [{**c, "claim_id": "X" + c["claim_id"]} for c in data.draw(
        st.lists(st.sampled_from(first), unique_by=lambda c: c["claim_id"], max_size=3) if first else st.just([]),
        "entered twice")]
    attrs = sorted(rs.get("attributes", {}))
    path = Path(tempfile.mkdtemp()) / "desk.sqlite3"
    with open_ledger(path) as db:
        for c in sorted(first + copies, key=lambda c: (c["date"], c["claim_id"])):
            db.settle(medaid.Claim.from_yuan(**c), book)
        for c in copies:
            db.reverse(c["claim_id"], "entered twice", book=book)
    opening = opening_from([(str(path), ledger_frame(load_ledger_results(path)))])
    assert not set(opening.claims["claim_id"]) & {c["claim_id"] for c in copies}
    results, rejects = settle_frame(claims_frame(second_half, attrs), book, opening=opening.for_book(book))
    assert sorted(rejects["claim_id"]) == sorted(c["claim_id"] for c in second_half if c["claim_id"] in refused)
    want = ref.settle([parsed], [c for c in claims if c["claim_id"] not in refused])
    assert results.height == len(second_half) - rejects.height
    for row in results.iter_rows(named=True):
        w = want[row["claim_id"]]
        assert {k: row[k] for k in SAME_AS_REFERENCE} == {k: getattr(w, k) for k in SAME_AS_REFERENCE}, w
    whole, _ = settle_frame(claims_frame(claims, attrs), book)
    later = whole.filter(pl.col("claim_id").is_in(results["claim_id"].to_list()))

    def per_claim(f: pl.DataFrame) -> pl.DataFrame:
        return f.select(pl.col(c).cast(pl.String) for c in PER_CLAIM).sort("claim_id")

    assert per_claim(results).equals(per_claim(later))


#: The worked claims before 15 March (recorded in the ledger) and from then on (the batch).
WORKED_HEADER, *_WORKED_ROWS = WORKED_CSV.splitlines()
WORKED_EARLY = "\n".join([WORKED_HEADER, *(r for r in _WORKED_ROWS if r.split(",")[3] < "2024-03-15")]) + "\n"
WORKED_LATE = "\n".join([WORKED_HEADER, *(r for r in _WORKED_ROWS if r.split(",")[3] >= "2024-03-15")]) + "\n"


def test_a_batch_opened_from_the_ledger_the_desks_recorded_gives_the_worked_figures(worked, db, tmp_path):
    """On both backends: the worked claims up to March recorded in the ledger (``medaid batch
    --record``), together with a desk's stay of PS on 1 February (XA, 30,000, as A) reversed as
    entered twice after them (the reversal re-settles A); April and May settled by ``medaid batch
    --ledger``.  By hand (WORKED): O2 finds PA's cap pool ``medical`` spent by I2 (4,640) and O1
    (360): 0; C3 finds the household's 10,000 spent by C1 and C2: 0; B's second stage continues
    A's burden, year to date 6,700 + 3,700 = 10,400 and second relief (10,400 − 5,000) × 50% =
    2,700, of which B's 2,700 − 850 = 1,850 (were XA still counted: 17,100 and 6,050).  The
    ledger's results carry the extended columns as the batch's results do; XA is not among them."""
    from medaid.ledger import open_ledger
    from medaid.ledger.export import load_ledger_results

    rules, _ = worked
    book = medaid.load_rules(rules)
    with open_ledger(db.location) as lg:
        lg.settle(medaid.Claim.from_yuan(claim_id="XA", person_id="PS", date=dt.date(2024, 2, 1), self_pay="30000",
                                         group="s", kind="inpatient"), book)
    early, late = tmp_path / "early.csv", tmp_path / "late.csv"
    early.write_text(WORKED_EARLY, encoding="utf-8")
    late.write_text(WORKED_LATE, encoding="utf-8")
    code, _, stderr = batch("batch", str(early), "--rules", str(rules), "--ledger", db.location, "--record",
                            "-o", str(tmp_path / "early.results.csv"))
    assert code == 0, stderr
    with open_ledger(db.location) as lg:
        lg.reverse("XA", "entered twice", book=book)
    stood = load_ledger_results(db.location)
    assert sorted(stood["claim_id"]) == sorted(r.split(",")[0] for r in WORKED_EARLY.splitlines()[1:])
    caps = dict(zip(stood["claim_id"], stood["caps"]))
    assert (caps["O1"], caps["I2"], caps["C1"], caps["C2"], caps["A"]) == (
        "medical=360.00", "medical=4640.00", "household=6300.00", "household=3700.00", None)
    a = stood.filter(pl.col("claim_id") == "A").row(0, named=True)
    assert (a["relief"], a["second_relief"], a["second_pool"], a["burden"]) == (2_415_000, 85_000, "burden", 670_000)

    out = tmp_path / "late.results.csv"
    code, stdout, stderr = batch("batch", str(late), "--rules", str(rules), "--ledger", db.location, "-o", str(out))
    assert code == 0, stderr
    assert "rows read 3 = settled 3 + already settled 0 + rejected 0" in stdout
    got = pl.read_csv(out, infer_schema=False, encoding="utf8-lossy")
    assert sorted(got["claim_id"]) == ["B", "C3", "O2"]
    for row in got.iter_rows(named=True):
        figures = (row["relief"], row["patient_pays"], row["capped_by"], row["second_relief"],
                   row["second_capped_by"], row["caps"])
        assert figures == WORKED[row["claim_id"]], row["claim_id"]
    b = got.filter(pl.col("claim_id") == "B").row(0, named=True)
    assert (b["burden"], b["ytd_burden"], b["ytd_second_relief"]) == ("3700.00", "10400.00", "2700.00")


def test_a_ledger_as_opening_under_rules_with_cap_pools_is_no_longer_refused(worked, tmp_path):
    """A desk's outpatient stay of PA on 5 January (L1, 10,000: (10,000 − 200) × 60% = 5,880,
    cut to the cap pool ``medical``'s 5,000) in the ledger: the batch of the worked claims opened
    from it (exit 0) finds PA's cap pool spent, so O1, I2 and O2 get 0 (cap:medical) and I1 0 (its
    own threshold not passed); the other persons' claims get the worked figures.  A ledger none
    of whose claims a cap pool or a second stage counted opens such rules too (its positions
    there are zero)."""
    from medaid.ledger import open_ledger

    rules, claims = worked
    ledger = tmp_path / "desk.sqlite3"
    with open_ledger(ledger) as db:
        l1 = db.settle(medaid.Claim(claim_id="L1", person_id="PA", date=dt.date(2024, 1, 5), self_pay=1_000_000,
                                    group="a", kind="outpatient"), medaid.load_rules(rules)).entry
    assert (l1.relief, l1.capped_by) == (500_000, "cap:medical")
    out = tmp_path / "results.csv"
    code, stdout, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(rules), "--ledger", str(ledger))
    assert code == 0, stderr
    assert "rows read 10 = settled 10 + already settled 0 + rejected 0" in stdout
    got = {r["claim_id"]: r for r in pl.read_csv(out, infer_schema=False).iter_rows(named=True)}
    assert {k: (got[k]["relief"], got[k]["capped_by"], got[k]["caps"]) for k in ("O1", "I1", "I2", "O2")} == {
        "O1": ("0.00", "cap:medical", "medical=0.00"), "I1": ("0.00", None, "medical=0.00"),
        "I2": ("0.00", "cap:medical", "medical=0.00"), "O2": ("0.00", "cap:medical", "medical=0.00")}
    for cid in ("C1", "C2", "C3", "A", "B", "N1"):
        assert (got[cid]["relief"], got[cid]["second_relief"], got[cid]["caps"]) == (
            WORKED[cid][0], WORKED[cid][3], WORKED[cid][5]), cid

    plain = tmp_path / "plain.sqlite3"  # a claim of a group outside the worked rules' cap pools
    with open_ledger(plain) as db:
        db.settle(medaid.Claim(claim_id="L2", person_id="PZ", date=dt.date(2024, 1, 5), self_pay=1_000_000,
                               group="s", kind="inpatient", hospital="H"), medaid.load_rules(rules))
    code, _, stderr = batch("batch", str(claims), "-o", str(out), "--rules", str(rules), "--ledger", str(plain))
    assert code == 0, stderr
    got = {r["claim_id"]: r for r in pl.read_csv(out, infer_schema=False).iter_rows(named=True)}
    assert {cid: got[cid]["relief"] for cid in WORKED} == {cid: w[0] for cid, w in WORKED.items()}
