"""The Spark path gives the local batch's fen on every claim (issue 6,
docs/calculation.md and README.md#reliability).

One local Spark session (``local[2]``, the ``spark`` fixture of conftest.py) serves the module.
Claim sets are generated with a fixed seed so that annual caps and claim caps bind, several plans share a pool, two rule
versions meet inside a benefit year (the scheme's benefit year starts in April, so the 2024
version's first quarter still counts into the 2023 benefit year), and bad rows are mixed in.
Expected values come from the local path (``columnar.settle_frame``) and from the scalar engine
(``medaid.settle``), or are worked out by hand in the test.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'medaid[spark]')")
if shutil.which("java") is None and not __import__("os").environ.get("JAVA_HOME"):
    pytest.skip("Java is not installed: Spark needs a JVM (Java 17)", allow_module_level=True)

import polars as pl  # noqa: E402
from polars.testing import assert_frame_equal  # noqa: E402

import medaid  # noqa: E402
from medaid.batch.columnar import settle_frame  # noqa: E402
from medaid.io.columns import RESULT_FIELDS  # noqa: E402
from medaid.spark.job import main, run_batch, settle_spark  # noqa: E402
from test_columnar import books_and_claims, frame_of, load_texts  # noqa: E402
from test_opening import per_claim  # noqa: E402

V2023 = """
id = "test-aid"
version = "2023"
valid_from = 2023-01-01
valid_to = 2023-12-31
rounding = { unit = "fen", method = "half-up" }
benefit_year_start_month = 4

[[plans]]
name = "key-inpatient"
match = { group = ["key"], kind = ["inpatient"] }
default = true
pool = "inpatient"
accumulate = "claim"
annual_cap = "20000"
brackets = [
  { from = "1000", to = "10000", rate = "70%" },
  { from = "10000", rate = "85%" },
]

[[plans]]
name = "low-inpatient"
match = { group = ["low-income"], kind = ["inpatient"] }
pool = "inpatient"
accumulate = "claim"
annual_cap = "20000"
brackets = [ { from = "2000", rate = "0.605" } ]

[[plans]]
name = "outpatient"
match = { group = ["key", "low-income"], kind = ["outpatient"] }
pool = "outpatient"
accumulate = "year"
annual_cap = "3000"
claim_cap = "800"
brackets = [ { from = "200", rate = "0.65" } ]
"""

V2024 = """
id = "test-aid"
version = "2024"
valid_from = 2024-01-01
rounding = { unit = "jiao", method = "half-even" }
benefit_year_start_month = 4

[[plans]]
name = "key-inpatient-24"
match = { group = ["key"], kind = ["inpatient"] }
default = true
pool = "inpatient"
accumulate = "year"
mode = "whole"
gate = "800"
annual_cap = "25000"
brackets = [
  { from = "0", to = "5000", rate = "50%" },
  { from = "5000", rate = "80%" },
]

[[plans]]
name = "low-inpatient-24"
match = { group = ["low-income"], kind = ["inpatient"] }
pool = "inpatient"
accumulate = "claim"
annual_cap = "25000"
claim_cap = "9000"
brackets = [ { from = "1500", rate = "0.625" } ]

[[plans]]
name = "outpatient-24"
match = { group = ["key", "low-income"], kind = ["outpatient"] }
pool = "outpatient"
accumulate = "year"
annual_cap = "2000"
claim_cap = "500"
brackets = [ { from = "100", rate = "0.55" } ]
"""


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rules")
    (d / "v2023.toml").write_text(V2023, encoding="utf-8")
    (d / "v2024.toml").write_text(V2024, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def book(rules_dir):
    return medaid.load_rules(rules_dir)


def generated_claims(seed: int, persons: int = 120) -> pl.DataFrame:
    """Claims of ``persons`` people from September 2023 to June 2024, large enough that caps
    bind; a few claims no plan or version covers.  Amounts are fen."""
    rng = random.Random(seed)
    rows = []
    start = dt.date(2023, 9, 1)
    for p in range(persons):
        group = rng.choice(["key", "key", "low-income"])
        for _ in range(rng.randint(1, 25)):
            kind = rng.choice(["inpatient", "outpatient", "outpatient"])
            fen = rng.choice([
                rng.randint(0, 150_000), rng.randint(0, 1_500_000), rng.randint(500_000, 6_000_000),
                rng.randint(1, 40) * 5,  # tiny amounts: rounding ties at the fen and jiao
            ])
            g, k = group, kind
            roll = rng.random()
            if roll < 0.03:
                g, k = None, None  # the default plan
            elif roll < 0.04:
                g = "unknown-group"  # no plan matches
            day = start + dt.timedelta(days=rng.randint(0, 302))
            if rng.random() < 0.01:
                day = dt.date(2022, 6, 1)  # no version covers it
            rows.append((f"S{seed}-C{len(rows):05d}", f"P{p:04d}", day, fen, g, k, f"H{rng.randint(1, 5)}"))
    rows.append((rows[5][0], "P-other", rows[5][2], 100_00, "key", "inpatient", "H1"))  # a repeated id
    rows.append((f"S{seed}-NEG", "P0000", rows[5][2], -1, "key", "inpatient", "H1"))  # a negative self-pay
    rows.append((f"S{seed}-NOP", None, rows[5][2], 100, "key", "inpatient", "H1"))  # no person
    rng.shuffle(rows)
    frame = pl.DataFrame(rows, orient="row", schema={
        "claim_id": pl.String, "person_id": pl.String, "date": pl.Date, "self_pay": pl.Int64,
        "group": pl.String, "kind": pl.String, "hospital": pl.String})
    return frame.with_row_index("row", offset=2).with_columns(pl.col("row").cast(pl.Int64))


def to_spark(spark, frame: pl.DataFrame):
    return spark.createDataFrame(frame.to_arrow())


def read_parts(folder: Path) -> pl.DataFrame:
    """A CSV folder Spark wrote, its part files in order, every value as text."""
    return pl.concat([pl.read_csv(f, infer_schema=False) for f in sorted(folder.glob("part-*.csv"))])


def collect(df) -> pl.DataFrame:
    out = pl.from_arrow(df.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


COMPARED = ["claim_id", "person_id", "date", "self_pay", "group", "kind", "hospital", *RESULT_FIELDS]


@pytest.fixture(scope="module")
def generated(spark, book):
    frame = generated_claims(seed=6)
    results, rejects = settle_spark(to_spark(spark, frame), book, buckets=5)
    return frame, collect(results), collect(rejects)


def test_every_claim_settles_on_spark_as_in_the_local_batch(generated, book):
    frame, spark_results, _ = generated
    valid = frame.filter((pl.col("self_pay") >= 0) & pl.col("person_id").is_not_null())
    local, _ = settle_frame(valid.unique("claim_id", keep="first", maintain_order=True), book)
    assert spark_results.height == local.height > 1000
    assert_frame_equal(
        spark_results.select(COMPARED).sort("claim_id"),
        local.select(COMPARED).sort("claim_id"),
        check_dtypes=False,
    )


def test_every_claim_settles_on_spark_as_in_the_scalar_engine(generated, book):
    frame, spark_results, _ = generated
    placeable = frame.join(spark_results.select("claim_id", "row"), on=["claim_id", "row"])
    claims = [medaid.Claim(claim_id=r["claim_id"], person_id=r["person_id"], date=r["date"],
                           self_pay=r["self_pay"], group=r["group"], kind=r["kind"])
              for r in placeable.iter_rows(named=True)]
    want = {s.claim_id: (s.relief, s.patient_pays, s.plan, s.benefit_year, s.ytd_relief, s.capped_by,
                         s.rule_version) for s in medaid.settle(claims, book)}
    got = {r["claim_id"]: (r["relief"], r["patient_pays"], r["plan"], r["benefit_year"], r["ytd_relief"],
                           r["capped_by"], r["rule_version"]) for r in spark_results.iter_rows(named=True)}
    assert got == want


def test_the_generated_set_binds_caps_and_spans_versions_plans_and_years(generated):
    """Guards the two tests above: the claim set must exercise what they claim to check."""
    _, r, _ = generated
    assert set(r["capped_by"].drop_nulls()) >= {"annual_cap", "claim_cap"}
    assert set(r["rule_version"]) == {"2023", "2024"}
    assert set(r["plan"]) == {"key-inpatient", "low-inpatient", "outpatient", "key-inpatient-24",
                              "low-inpatient-24", "outpatient-24"}
    # the benefit year starts in April: January-March 2024 (2024 version) still count into 2023
    q1 = r.filter((pl.col("date") >= dt.date(2024, 1, 1)) & (pl.col("date") < dt.date(2024, 4, 1)))
    assert set(q1["benefit_year"]) == {2023}
    assert set(r.filter(pl.col("date") >= dt.date(2024, 4, 1))["benefit_year"]) == {2024}


def test_claims_no_version_or_plan_covers_are_rejected_with_reasons(generated):
    frame, results, rejects = generated
    assert results.height + rejects.height == frame.height
    by_field = dict(rejects.group_by("field").len().iter_rows())
    assert by_field.get("date", 0) > 0 and by_field.get("group/kind", 0) > 0
    no_version = rejects.filter(pl.col("field") == "date")["message"]
    assert all("no version of scheme 'test-aid' covers 2022-06-01" in m for m in no_version)
    no_plan = rejects.filter(pl.col("field") == "group/kind")["message"]
    assert all("matches group 'unknown-group'" in m for m in no_plan)
    wanted = frame.filter((pl.col("group") == "unknown-group") | (pl.col("date") == dt.date(2022, 6, 1)))
    repeat = frame.filter(pl.col("claim_id") == "S6-C00005").sort("row")
    assert sorted(rejects["claim_id"]) == sorted([*wanted["claim_id"], "S6-C00005", "S6-NEG", "S6-NOP"])
    assert rejects.filter(pl.col("claim_id").str.contains("-N")).sort("claim_id").select("field", "message").rows() \
        == [("self_pay", "must not be negative"), ("person_id", "is empty")]
    assert rejects.filter(pl.col("field") == "claim_id").select("row", "message").rows() == [
        (repeat["row"][1], f"duplicate claim id (first on line {repeat['row'][0]})")]


# --------------------------------------------------------------------------------------------
# the batch: files in, files out


CSV = """\
结算单号,人员编号,结算日期,合规自付费用,救助对象类别,就诊类型,备注,医疗机构,relief
A1,P1,2023-12-31,"15,000.00",key,inpatient,first stay,H1,1
A2,P1,2023-12-31,30000,key,inpatient,,"=HYPERLINK(""x"")",2
A3,P1,2024-01-01,30000,key,inpatient,,H1,3
A4,P2,2023-05-02,abc,key,inpatient,,H2,4
A5,,2023-05-02,100,key,inpatient,,H2,5
A6,P3,2023-05-02,100.005,key,inpatient,,H2,6
A1,P3,2023-05-03,100,key,inpatient,,H2,7

A8,P4,2023-05-03,500,key,outpatient,,H2,8
A9,P4,2023-06-03,1500,key,outpatient,-1,H2,9
"""


def test_a_csv_batch_is_settled_rejected_and_reconciled_line_by_line(spark, rules_dir, tmp_path):
    src = tmp_path / "claims.csv"
    src.write_text(CSV, encoding="utf-8")
    out, rej = tmp_path / "results.csv", tmp_path / "rejects.csv"
    summary = run_batch(str(src), str(out), str(rules_dir), rejects_path=str(rej), on_error="skip")

    assert (summary.rows_read, summary.settled, summary.rejected) == (9, 5, 4)
    rejects = read_parts(rej)
    assert rejects["row"].to_list() == ["5", "6", "7", "8"]  # header = line 1, the blank line 9 is skipped
    assert rejects["field"].to_list() == ["self_pay", "person_id", "self_pay", "claim_id"]
    assert "not an amount in yuan" in rejects["message"][0]
    assert "more than two decimals" in rejects["message"][2]
    assert rejects["message"][3] == "duplicate claim id (first on line 2)"

    results = read_parts(out)
    got = dict(zip(results["claim_id"], results["relief"]))
    # 2023: 15,000 → 6,300 + 5,000 × 85% = 10,550; 30,000 → 23,300, capped at 20,000 − 10,550
    # 1 January 2024 is under the 2024 version; the benefit year starts in April, so it counts
    # into (P1, 2023, inpatient) with the 2023 claims, C = 45,000 before and 75,000 after;
    # whole mode, year accumulation: 80% × 75,000 − 80% × 45,000 = 24,000, capped at the
    # 2024 annual cap 25,000 − 20,000 already granted = 5,000.
    # Outpatient, year mode, 65% above 200: 500 → 195; 2,000 → 1,170 − 195 = 975 > claim cap 800.
    assert got == {"A1": "10550.00", "A2": "9450.00", "A3": "5000.00", "A8": "195.00", "A9": "800.00"}
    assert results.filter(pl.col("claim_id") == "A2")["hospital"][0] == "'=HYPERLINK(\"x\")"
    assert results.filter(pl.col("claim_id") == "A3")["capped_by"][0] == "annual_cap"
    # the input's columns in its order, under their field names; others pass through as text
    assert results.columns == ["claim_id", "person_id", "date", "self_pay", "group", "kind", "备注",
                               "hospital", "relief_input", *RESULT_FIELDS]
    assert results["备注"].to_list() == ["first stay", None, None, None, "'-1"]
    assert results["relief_input"].to_list() == ["1", "2", "3", "8", "9"]
    assert summary.total.relief == 10550_00 + 9450_00 + 5000_00 + 195_00 + 800_00
    assert summary.total.persons == 2
    assert (summary.total.claims_capped, summary.total.persons_at_annual_cap) == (3, 1)  # A2, A3 annual; A9 claim
    assert {t.key: t.claims for t in summary.by_month} == {"2023-05": 1, "2023-06": 1, "2023-12": 2, "2024-01": 1}


def test_csv_headers_are_neutralised_and_chinese_with_lang_zh(spark, rules_dir, tmp_path):
    """Issue #11 (19, 16): an input column named ``=1+2`` is written ``'=1+2`` in the header;
    the rejects' text cells are neutralised like the results'; ``lang="zh"`` gives Chinese
    headers, which the results reader takes back (15,000 → 10,550 in the 2023 key plan:
    70% of 9,000 + 85% of 5,000 = 6,300 + 4,250)."""
    from medaid.io.readers import read_results

    src = tmp_path / "claims.csv"
    src.write_text("claim_id,person_id,date,self_pay,group,kind,=1+2\n"
                   "A1,P1,2023-05-02,15000,key,inpatient,x\n=A2,P2,2023-05-02,abc,key,inpatient,y\n",
                   encoding="utf-8")
    out, rej = tmp_path / "results.csv", tmp_path / "rejects.csv"
    run_batch(str(src), str(out), str(rules_dir), rejects_path=str(rej), on_error="skip", lang="zh")
    results = read_parts(out)
    assert results.columns[:7] == ["结算单号", "人员编号", "结算日期", "合规自付费用", "救助对象类别",
                                   "就诊类型", "'=1+2"]
    assert results["救助金额"].to_list() == ["10550.00"]
    assert read_parts(rej)["claim_id"].to_list() == ["'=A2"]
    part = next(out.glob("part-*.csv"))
    back = read_results(part.rename(tmp_path / "back.csv"))
    assert back["relief"].to_list() == [1_055_000] and "=1+2" in back.columns


def yuan(fen: pl.Expr) -> pl.Expr:
    """Fen → Decimal(18, 2) yuan, exactly (Python's Decimal, one value at a time)."""
    return fen.map_elements(lambda f: Decimal(f).scaleb(-2), return_dtype=pl.Decimal(18, 2))


def test_a_parquet_folder_gives_the_local_results_with_exact_decimal_yuan(spark, book, rules_dir, tmp_path):
    frame = generated_claims(seed=7, persons=40).filter(pl.col("group") != "unknown-group")
    frame = frame.filter((pl.col("date") != dt.date(2022, 6, 1)) & (pl.col("self_pay") >= 0)
                         & pl.col("person_id").is_not_null())
    frame = frame.unique("claim_id", keep="first", maintain_order=True)
    files = tmp_path / "in"
    files.mkdir()
    half = frame.height // 2  # a person's claims are split over both files
    for i, part in enumerate((frame[:half], frame[half:])):
        part.with_columns(yuan(pl.col("self_pay"))).drop("row").write_parquet(files / f"part{i}.parquet")
    again = frame[:1].with_columns(pl.lit(1000, pl.Int64).alias("row"))  # file 0's first claim id, repeated
    pl.concat([frame[half:], again]).with_columns(yuan(pl.col("self_pay"))).drop("row").write_parquet(
        files / "part1.parquet")
    out = tmp_path / "results"
    summary = run_batch(str(files), str(out), str(rules_dir), on_error="skip")
    assert (summary.rows_read, summary.settled, summary.rejected) == (frame.height + 1, frame.height, 1)
    assert summary.rejects_sample == (
        f"{files}/part1.parquet:{frame.height - half + 1}: claim_id: "
        f"duplicate claim id (first in {files}/part0.parquet, line 1) (claim {frame['claim_id'][0]})",)

    written = pl.read_parquet(out / "*.parquet")
    assert written.schema["relief"] == pl.Decimal(18, 2)
    local, _ = settle_frame(frame, book)
    assert_frame_equal(
        written.select("claim_id", "relief", "patient_pays", "ytd_relief", "plan", "capped_by").sort("claim_id"),
        local.select(
            "claim_id",
            *[yuan(pl.col(c)) for c in ("relief", "patient_pays", "ytd_relief")],
            "plan", "capped_by",
        ).sort("claim_id"),
    )
    by_plan = local.group_by("plan").agg(pl.col("relief").sum())
    assert {t.key: t.relief for t in summary.by_plan} == dict(by_plan.iter_rows())


def test_with_on_error_fail_a_bad_row_refuses_the_batch_and_writes_nothing(spark, rules_dir, tmp_path, capsys):
    """Through the ``python -m medaid.spark`` entry point (what spark-submit runs)."""
    src = tmp_path / "claims.csv"
    src.write_text(CSV, encoding="utf-8")
    out = tmp_path / "results.csv"
    assert main([str(src), "-o", str(out), "--rules", str(rules_dir), "--max-errors", "2"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{src}:5: self_pay: is not an amount in yuan: character 1 is LATIN SMALL LETTER A")
    assert err[0].endswith("(claim A4)")
    assert err[1] == f"{src}:6: person_id: is empty (claim A5)"
    assert err[2] == f"{src}: ... and 2 more rejected rows"
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_a_file_without_a_required_column_refuses_the_run(spark, rules_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_text("claim_id,person_id,date,self_pay\nC1,P1,2024-05-03,100\n", encoding="utf-8")
    (folder / "b.csv").write_text("结算单号,人员编号,合规自付\nC2,P1,100\n", encoding="utf-8")
    with pytest.raises(medaid.MedaidError) as e:
        run_batch(str(folder), str(tmp_path / "out"), str(rules_dir))
    assert str(e.value).startswith(f"{folder}/b.csv:1: missing required column(s): date; found '结算单号'")
    assert not (tmp_path / "out").exists()


def test_two_columns_naming_one_field_refuse_the_run_as_locally(spark, rules_dir, tmp_path):
    # 合规自付费用 and self_pay both name the self-pay: which amount is meant cannot be known, so
    # the run is refused (as `medaid batch` refuses the file) rather than one column settled
    src = tmp_path / "two.csv"
    src.write_text("claim_id,person_id,date,合规自付费用,self_pay\nC1,P1,2023-05-03,30000,300\n", encoding="utf-8")
    with pytest.raises(medaid.MedaidError) as e:
        run_batch(str(src), str(tmp_path / "out"), str(rules_dir))
    assert str(e.value).startswith(f"{src}:1: self_pay: columns '合规自付费用' and 'self_pay' both give self_pay")
    assert not (tmp_path / "out").exists()
    # full-width letters are the same header once normalised (NFKC), in both readers
    src.write_text("claim_id,person_id,date,ｓｅｌｆ_ｐａｙ,self_pay\nC1,P1,2023-05-03,30000,300\n", encoding="utf-8")
    with pytest.raises(medaid.MedaidError) as e:
        run_batch(str(src), str(tmp_path / "out"), str(rules_dir))
    assert "columns 'ｓｅｌｆ_ｐａｙ' and 'self_pay' both give self_pay" in str(e.value)


def test_a_gbk_csv_is_read_as_chinese_excel_saves_it(spark, rules_dir, tmp_path):
    src = tmp_path / "gbk.csv"
    src.write_bytes("结算单号,人员编号,结算日期,合规自付费用,医疗机构\nG1,P1,2023-05-03,30000,县人民医院\n".encode("gbk"))
    out = tmp_path / "out.csv"
    summary = run_batch(str(src), str(out), str(rules_dir))
    written = read_parts(out)
    # the default plan (key, inpatient) of 2023: 6,300 + 20,000 × 85% = 23,300, capped at 20,000
    assert written.select("hospital", "relief").rows() == [("县人民医院", "20000.00")]
    assert summary.total.relief == 20000_00


def test_a_file_that_is_not_parquet_refuses_the_run(spark, rules_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pl.DataFrame({"claim_id": ["C1"], "person_id": ["P1"], "date": [dt.date(2023, 5, 3)],
                  "self_pay": ["100"]}).write_parquet(folder / "good.parquet")
    (folder / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(medaid.MedaidError) as e:
        run_batch(str(folder), str(tmp_path / "out"), str(rules_dir))
    assert f"{folder}/bad.parquet" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_a_ragged_csv_row_is_rejected_at_its_line_as_in_the_local_batch(spark, rules_dir, tmp_path):
    src = tmp_path / "ragged.csv"
    src.write_text("claim_id,person_id,date,self_pay\nC1,P1,2023-05-03,1\nC2,P1,2023-05-03,1,extra\n",
                   encoding="utf-8")
    summary = run_batch(str(src), str(tmp_path / "out"), str(rules_dir), on_error="skip")
    assert (summary.rows_read, summary.settled, summary.rejected) == (2, 1, 1)
    assert summary.rejects_sample == (f"{src}:3: row: has 5 fields, the header has 4",)


def test_no_line_is_lost_to_a_stray_quote_cr_line_ends_or_a_title(spark, rules_dir, tmp_path):
    """Issue #11: the Spark reader reads each CSV file as the local batch does.  A stray quote
    refuses its line only; lines ended by CR alone are lines; a title above the header is not
    the header.  Each 5,000 yuan stay is relieved 70% × (5,000 − 1,000) = 2,800 yuan."""
    folder = tmp_path / "in"
    folder.mkdir()
    head = "claim_id,person_id,date,self_pay\n"
    (folder / "stray.csv").write_text(head + "S1,P1,2023-05-03,5000\n"
                                      'S2,"P2,2023-05-03,5000\n'      # 3: a quote left open
                                      "S3,P3,2023-05-03,5000\nS4,P4,2023-05-03,5000\n", encoding="utf-8")
    (folder / "mac.csv").write_text((head + "M1,P5,2023-05-03,5000\nM2,P6,2023-05-03,5000\n")
                                    .replace("\n", "\r"), encoding="utf-8")
    (folder / "titled.csv").write_text("2023年医疗救助结算明细表,,,\n\n" + head
                                       + "T1,P7,2023-05-03,5000\nT2,P8,2023-05-03,5000\n",
                                       encoding="utf-8")
    out, rej = tmp_path / "out.csv", tmp_path / "rej.csv"
    summary = run_batch(str(folder), str(out), str(rules_dir), rejects_path=str(rej), on_error="skip")
    # 4 + 2 + 2 rows; one refused
    assert (summary.rows_read, summary.settled, summary.rejected) == (8, 7, 1)
    rejects = read_parts(rej)
    assert rejects.select("source", "row", "field").rows() == [(f"{folder}/stray.csv", "3", "row")]
    written = read_parts(out)
    assert sorted(written["claim_id"].to_list()) == ["M1", "M2", "S1", "S3", "S4", "T1", "T2"]
    assert set(written["relief"].to_list()) == {"2800.00"}


def test_a_titled_csv_lacking_a_column_is_named_by_its_header_line_on_spark(spark, rules_dir, tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("2023年医疗救助结算明细表\n\nclaim_id,person_id,date,amount\nC1,P1,2023-05-03,1\n",
                   encoding="utf-8")
    with pytest.raises(medaid.MedaidError) as e:
        run_batch(str(src), str(tmp_path / "out"), str(rules_dir))
    assert str(e.value).startswith(f"{src}:3: missing required column(s): self_pay; found 'claim_id'")


def test_medaid_batch_engine_spark_runs_the_same_batch_from_the_command_line(spark, rules_dir, tmp_path):
    """`medaid batch --engine spark` is the CLI door to run_batch: same reliefs as above."""
    from click.testing import CliRunner

    from medaid.cli import main

    src = tmp_path / "claims.csv"
    src.write_text(CSV, encoding="utf-8")
    out, rej = tmp_path / "results.csv", tmp_path / "rejects.csv"
    res = CliRunner().invoke(main, [
        "batch", "--engine", "spark", "--master", "local[2]", str(src), "-o", str(out),
        "--rules", str(rules_dir), "--on-error", "skip", "--rejects", str(rej)])
    assert res.exit_code == 0, res.output
    assert "rows read 9 = settled 5 + rejected 4" in res.output
    got = dict(zip(*read_parts(out).select("claim_id", "relief").to_dict(as_series=False).values()))
    assert got == {"A1": "10550.00", "A2": "9450.00", "A3": "5000.00", "A8": "195.00", "A9": "800.00"}


def test_spark_writes_the_columns_asked_a_short_rule_hash_and_a_manifest(spark, rules_dir, tmp_path):
    """``--columns`` and the run manifest on Spark: the same reliefs as above, worked by hand."""
    import hashlib
    import json

    from click.testing import CliRunner

    from medaid.cli import main

    src = tmp_path / "claims.csv"
    src.write_text(CSV, encoding="utf-8")
    out, full = tmp_path / "pay.csv", tmp_path / "full.csv"
    res = CliRunner().invoke(main, [
        "batch", "--engine", "spark", str(src), "-o", str(out), "--rules", str(rules_dir),
        "--on-error", "skip", "--columns", "claim_id,relief"])
    assert res.exit_code == 0, res.output
    got = read_parts(out)
    assert got.columns == ["claim_id", "relief"]
    assert dict(got.iter_rows()) == {"A1": "10550.00", "A2": "9450.00", "A3": "5000.00", "A8": "195.00",
                                     "A9": "800.00"}
    m = json.loads((tmp_path / "pay.csv.manifest.json").read_text(encoding="utf-8"))
    assert m["inputs"] == [{"path": str(src), "bytes": src.stat().st_size,
                            "sha256": hashlib.sha256(src.read_bytes()).hexdigest(), "rows_read": 9}]
    digests = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in rules_dir.glob("*.toml")}
    assert {r["file"].rsplit("/", 1)[-1]: r["sha256"] for r in m["rules"]} == digests
    assert m["reconciliation"]["line"] == "rows read 9 = settled 5 + rejected 4"
    assert m["totals"]["relief"] == 10550_00 + 9450_00 + 5000_00 + 195_00 + 800_00
    assert "persons_at_cap_pool" not in m["totals"]  # plain rules: no such total (docs/batch.md, Totals)
    assert m["outputs"]["columns"] == ["claim_id", "relief"] and m["options"]["engine"] == "spark"
    # rule_hash: 12 hex digits by default, the whole sha256 with full_rule_hash
    run_batch(str(src), str(full), str(rules_dir), on_error="skip", full_rule_hash=True)
    assert set(read_parts(full)["rule_hash"]) <= set(digests.values())
    short = run_batch(str(src), str(tmp_path / "short.csv"), str(rules_dir), on_error="skip")
    assert short.settled == 5 and "persons_at_cap_pool" not in json.dumps(short.to_dict())
    assert set(read_parts(tmp_path / "short.csv")["rule_hash"]) <= {d[:12] for d in digests.values()}
    bad = CliRunner().invoke(main, ["batch", "--engine", "spark", str(src), "-o", str(tmp_path / "x"),
                                    "--rules", str(rules_dir), "--columns", "claim_id,nope"])
    assert bad.exit_code == 1 and "unknown column(s) nope; choose from: claim_id" in bad.output
    assert not (tmp_path / "x").exists()


def test_engine_spark_needs_an_output_folder(rules_dir, tmp_path):
    from click.testing import CliRunner

    from medaid.cli import main

    src = tmp_path / "claims.csv"
    src.write_text(CSV, encoding="utf-8")
    res = CliRunner().invoke(main, ["batch", "--engine", "spark", str(src), "--rules", str(rules_dir)])
    assert res.exit_code == 2 and "needs -o OUTPUT" in res.output


def test_a_version_lowering_the_annual_cap_mid_year_settles_and_counts_as_worked_by_hand(spark, tmp_path):
    """Issue #17: the year of tests/version_change.py (a cap lowered from 1 October, a pool
    already above the new cap) on Spark: the hand-worked reliefs, capped_by and brackets,
    and the totals' capped counts equal to the hand count."""
    from version_change import (
        CLAIMS_CAPPED,
        EXPECTED,
        PERSONS_AT_ANNUAL_CAP,
        claims_csv,
        write_rules,
    )

    rules = write_rules(tmp_path / "rules")
    out = tmp_path / "results.csv"
    summary = run_batch(str(claims_csv(tmp_path / "claims.csv")), str(out), str(rules))
    res = read_parts(out)
    got = {r["claim_id"]: (medaid.parse_yuan(r["relief"]), medaid.parse_yuan(r["bracket_relief"]),
                           r["capped_by"], int(r["bracket"]), r["rule_version"]) for r in res.iter_rows(named=True)}
    assert got == EXPECTED
    assert (summary.total.claims_capped, summary.total.persons_at_annual_cap) == (CLAIMS_CAPPED, PERSONS_AT_ANNUAL_CAP)


# -- identifiers (issue #11, defect 6) ---------------------------------------------------------

ID = "50010119800101123X"
#: the same ID number keyed as full-width text, with a lower-case check character, with a
#: zero-width space, with spaces around it
KEYED = ["５００１０１１９８００１０１１２３Ｘ", "50010119800101123x", "\u200b50010119800101123X",
         " 50010119800101123X "]


def test_one_person_keyed_four_ways_has_one_pool_on_spark(spark, book, rules_dir, tmp_path):
    # 15,000 → 6,300 + 5,000 × 85% = 10,550; then 30,000 (23,300) capped at 20,000 − 10,550 =
    # 9,450; then nothing is left of the cap
    frame = pl.DataFrame({
        "claim_id": ["A1", "A2", "A3", "A4", "Ａ１"],
        "person_id": KEYED + ["P2"],
        "date": [dt.date(2023, 5, 3)] * 5,
        "self_pay": [1_500_000, 3_000_000, 3_000_000, 3_000_000, 3_000_000],
        "group": ["key"] * 5, "kind": ["inpatient"] * 5,
    })
    results, rejects = settle_spark(to_spark(spark, frame), book, buckets=4)
    got = collect(results)
    assert dict(zip(got["claim_id"], got["relief"])) == {"A1": 1_055_000, "A2": 945_000, "A3": 0, "A4": 0}
    assert set(got["person_id"]) == {ID}
    rej = collect(rejects)
    assert rej["claim_id"].to_list() == ["A1"] and "duplicate claim id" in rej["message"][0]
    results.unpersist()

    src = tmp_path / "claims.csv"  # the same through the file reader
    src.write_text("claim_id,person_id,date,self_pay,group,kind\n" + "".join(
        f"{c},{p},2023-05-03,{s},key,inpatient\n"
        for c, p, s in zip(["A1", "A2", "A3", "A4"], KEYED, ["15000", "30000", "30000", "30000"])), encoding="utf-8")
    out = tmp_path / "out.csv"
    run_batch(str(src), str(out), str(rules_dir))
    parts = read_parts(out)
    assert dict(zip(parts["claim_id"], parts["relief"])) == {
        "A1": "10550.00", "A2": "9450.00", "A3": "0.00", "A4": "0.00"}
    assert set(parts["person_id"]) == {ID}


def test_results_and_rejects_folders_are_private(spark, rules_dir, tmp_path):
    """They hold ID numbers: folders 0700, part files 0600 (README.md#reliability), whatever the umask."""
    import os
    import stat

    src = tmp_path / "claims.csv"
    src.write_text("claim_id,person_id,date,self_pay,group,kind\nA1,P1,2023-05-03,15000,key,inpatient\n"
                   "A2,P1,2023-05-04,-1,key,inpatient\n", encoding="utf-8")
    outs = [tmp_path / "out.csv", tmp_path / "out.parquet", tmp_path / "rejects.csv"]
    old = os.umask(0o022)
    try:
        run_batch(str(src), str(outs[0]), str(rules_dir), rejects_path=str(outs[2]), on_error="skip")
        run_batch(str(src), str(outs[1]), str(rules_dir), on_error="skip")
    finally:
        os.umask(old)
    for folder in outs:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        parts = [f for f in folder.iterdir() if f.name.startswith("part-")]
        assert parts and {stat.S_IMODE(f.stat().st_mode) for f in parts} == {0o600}, folder


def test_chinese_groups_and_kinds_and_too_large_amounts_on_spark_as_in_the_local_batch(spark):
    """Issue #11: names from the shipped rule file's [groups]/[kinds] tables settle under the
    plan of their code and are recorded as the code; a self-pay above the maximum (9,999,999.99
    yuan) is rejected naming self_pay; exactly as the local batch does."""
    book = medaid.load_rules(Path(__file__).resolve().parents[1] / "rules" / "chongqing-county-2019.toml")
    frame = pl.DataFrame({
        "claim_id": ["A", "B", "C", "D"], "person_id": ["P1", "P2", "P3", "P4"],
        "date": [dt.date(2019, 5, 1)] * 4, "self_pay": [3_000_000, 3_000_000, 3_000_000, 10**9],
        "group": ["特困人员", "低保对象", "key", "key"], "kind": ["住院", "门诊慢特病", "inpatient", "inpatient"],
        "hospital": [None] * 4,
    }, schema_overrides={"hospital": pl.String})
    results, rejects = settle_spark(to_spark(spark, frame), book, buckets=2)
    got = collect(results).sort("claim_id")
    numbered = frame.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    local, local_rejects = settle_frame(numbered, book)
    assert got.select("claim_id", "group", "kind", "relief").rows() == [
        ("A", "key", "inpatient", 2_330_000),            # 23,300 yuan
        ("B", "key", "outpatient-special", 300_000),     # capped at 3,000 a visit
        ("C", "key", "inpatient", 2_330_000),
    ] == local.select("claim_id", "group", "kind", "relief").rows()
    rej = collect(rejects)
    assert rej.select("claim_id", "field").rows() == [("D", "self_pay")]
    assert rej["message"][0] == local_rejects["message"][0] == "is too large: amounts are at most 9,999,999.99 yuan"


def test_spark_totals_are_the_local_batch_totals_through_the_one_engine(spark, generated):
    """medaid.spark.job.summarize (partial sums per cell collected from Spark, finished by
    medaid.report.totals.combine) gives the local batch's totals, group by group."""
    from medaid.report.totals import summarise
    from medaid.spark.job import summarize

    _, local, _ = generated  # the settled claims, collected from Spark
    total, by_plan, by_month, by_hospital = summarize(to_spark(spark, local))
    want = summarise(local)
    fields = ("claims", "persons", "self_pay", "relief", "patient_pays", "claims_capped", "persons_at_annual_cap")
    assert tuple(getattr(total, f) for f in fields) == tuple(want["total"][f] for f in fields)
    for got, rows, dim in ((by_plan, want["by_plan"], "plan"), (by_month, want["by_month"], "month"),
                           (by_hospital, want["by_hospital"], "hospital")):
        assert [(t.key, *(getattr(t, f) for f in fields)) for t in got] == [
            (r[dim], *(r[f] for f in fields)) for r in rows]


# --------------------------------------------------------------------------------------------
# opening balances on Spark (docs/batch.md, *Opening balances*)


def _spark_periods_equal_the_local_year(spark, claims: list[medaid.Claim], book: medaid.RuleBook,
                                        months: int = 1) -> None:
    """Each period of ``months`` months of ``claims`` settled on Spark with the opening of every
    earlier period's Spark results gives, claim by claim, the local batch of all of them in one
    run."""
    from medaid.batch.opening import opening_from

    whole, _ = settle_frame(frame_of(claims), book)

    def period(c: medaid.Claim) -> tuple[int, int]:
        return c.date.year, (c.date.month - 1) // months

    earlier: list[tuple[str, pl.DataFrame]] = []
    parts = []
    for y, m in sorted({period(c) for c in claims}):
        month = frame_of([c for c in claims if period(c) == (y, m)])
        results, _ = settle_spark(to_spark(spark, month), book, buckets=2, opening=opening_from(earlier))
        got = collect(results)
        results.unpersist()
        earlier.append((f"{y}-{m:02d}", got))
        parts.append(got)
    months_frame = pl.concat(parts, how="diagonal_relaxed") if parts else whole
    assert per_claim(months_frame).equals(per_claim(whole))


@settings(max_examples=3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=books_and_claims(), first=st.integers(0, 22))
def test_months_settled_on_spark_in_sequence_with_openings_equal_the_year_in_one_batch(spark, case, first):
    """Generated rules (versions, pools, caps, gates, benefit years starting in other months)
    and claims: on the Spark path too, months in sequence with opening balances give exactly the
    per-claim results of one batch.  A few examples, each of the claims of four consecutive
    months from the ``first``-th month they span (each month is a Spark job: seconds)."""
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:  # a generated combination the rule checks refuse
        return
    start = min(c.date for c in claims).replace(day=1)
    index = [(c.date.year - start.year) * 12 + c.date.month - start.month for c in claims]
    _spark_periods_equal_the_local_year(spark, [c for c, i in zip(claims, index, strict=True)
                                                if first <= i < first + 4], book)


def test_the_example_year_quarter_by_quarter_on_spark_equals_the_yearly_batch(spark, tmp_path):
    """The example year, quarter by quarter on Spark, each quarter opening with the earlier
    quarters' Spark results: every claim as in the yearly batch; and ``medaid batch --engine spark``
    with ``--opening`` (January–November's results) and with ``--ledger`` pays December's
    1,243,223.39, its already settled claims counted apart, not rejected."""
    from click.testing import CliRunner

    from medaid.batch.run import read_file
    from medaid.cli import main as cli

    root = Path(__file__).resolve().parents[1]
    example, rules = root / "examples" / "claims-2024.csv", str(root / "rules")
    book = medaid.load_rules(rules)
    clean = read_file(example).clean
    claims = [medaid.Claim(claim_id=r["claim_id"], person_id=str(r["person_id"]), date=r["date"],
                           self_pay=r["self_pay"], group=str(r["group"]), kind=str(r["kind"]))
              for r in clean.iter_rows(named=True)]
    _spark_periods_equal_the_local_year(spark, claims, book, months=3)

    raw = pl.read_csv(example, infer_schema=False)
    month = pl.col(raw.columns[2]).str.slice(5, 2)
    raw.filter(month < "12").write_csv(tmp_path / "early.csv")
    raw.filter(month >= "11").write_csv(tmp_path / "late.csv")  # November again, and December
    r = CliRunner().invoke(cli, ["batch", str(tmp_path / "early.csv"), "-o", str(tmp_path / "early.results.csv"),
                                 "--rules", rules])
    assert r.exit_code == 0, r.stderr
    n_nov = raw.filter(month == "11").height
    n_dec = raw.filter(month == "12").height
    r = CliRunner().invoke(cli, ["batch", str(tmp_path / "late.csv"), "--engine", "spark", "--rules", rules,
                                 "-o", str(tmp_path / "dec.parquet"), "--opening",
                                 str(tmp_path / "early.results.csv"), "--json"])
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)
    assert (got["settled"], got["already_settled"], got["rejected"]) == (n_dec, n_nov, 0)
    assert got["total"]["relief"] == 124_322_339
    from medaid.io.results import read_results

    year = settle_frame(clean, book)[0]
    december = pl.concat([read_results(f) for f in sorted((tmp_path / "dec.parquet").glob("part-*.parquet"))])
    assert per_claim(december).equals(per_claim(year.filter(pl.col("date").dt.month() == 12)))


def test_spark_continues_a_ledger_as_the_local_batch_does(spark, tmp_path):
    """``--engine spark --ledger``: the ledger's positions open the batch (by hand, the shipped
    rules: the desk paid 87,800 of the 100,000 cap, so a 30,000 stay gets 12,200) and its claim
    ids are counted as already settled, as on the local path; a bank account is masked in the
    results on both paths."""
    from click.testing import CliRunner

    from medaid.cli import main as cli
    from medaid.ledger import open_ledger

    root = Path(__file__).resolve().parents[1]
    rules = str(root / "rules")
    ledger = str(tmp_path / "county.sqlite3")
    with open_ledger(ledger) as lg:
        lg.settle(medaid.Claim(claim_id="D1", person_id="P1", date="2024-03-01", self_pay=10_000_000,
                               group="key", kind="inpatient"), medaid.load_rules(rules))
    src = tmp_path / "more.csv"
    src.write_text("claim_id,person_id,date,self_pay,group,kind,bank_account\n"
                   "D1,P1,2024-03-01,100000,key,inpatient,\nA1,P1,2024-03-05,30000,key,inpatient,6222020200112233445\n",
                   encoding="utf-8")
    for engine, out in (("local", "local.csv"), ("spark", "spark.parquet")):
        r = CliRunner().invoke(cli, ["batch", str(src), "--engine", engine, "--ledger", ledger, "--rules", rules,
                                     "-o", str(tmp_path / out), "--json"])
        assert r.exit_code == 0, r.stderr
        got = json.loads(r.stdout)
        assert (got["settled"], got["already_settled"], got["rejected"]) == (1, 1, 0)
        assert got["total"]["relief"] in (1_220_000, "12200.00")
    # the bank account is masked on both paths
    local = pl.read_csv(tmp_path / "local.csv", infer_schema=False)
    spark_out = pl.concat([pl.read_parquet(f) for f in sorted((tmp_path / "spark.parquet").glob("part-*.parquet"))])
    assert local["bank_account"].to_list() == spark_out["bank_account"].to_list() == ["6222***********3445"]
