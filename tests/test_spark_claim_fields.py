"""Issue 15's claim fields in the Spark job's reader (docs/spark.md): a CSV file's 户号,
非合规费用 and declared attribute columns (医院等级) are read into the claims frame as the local
readers read them (household id tidied, the cost in fen, the attribute named by its name and
tidied), and a bad non-compliant cost rejects its row with its line and field."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'medaid[spark]')")
if shutil.which("java") is None and not __import__("os").environ.get("JAVA_HOME"):
    pytest.skip("Java is not installed: Spark needs a JVM (Java 17)", allow_module_level=True)

from medaid.spark.job import read_claims  # noqa: E402

LEVEL = {"level": ("hospital_level", "医院等级")}


def test_the_spark_reader_reads_household_non_compliant_and_attribute_columns(spark, tmp_path):
    src = tmp_path / "claims.csv"
    src.write_text("结算单号,人员编号,结算日期,合规自付费用,户号,非合规费用,医院等级,备注\n"
                   "C1,P1,2024-03-01,10000,H1,4000,三级,a\n"
                   "C2,P2,2024-03-01,10000, Ｈ２ ,\"1,234.50\", 二级 ,b\n"
                   "C3,P3,2024-03-02,2000,,,,c\n"
                   "C4,P4,2024-03-02,2000,H4,-5,一级,d\n", encoding="utf-8")
    frame, layout = read_claims(spark, str(src), "csv", LEVEL)
    # the file's columns in order, by their field (or attribute) names
    assert layout == ["claim_id", "person_id", "date", "self_pay", "household_id", "non_compliant", "level", "备注"]
    rows = {r["claim_id"]: r for r in frame.collect()}
    got = [(c, rows[c]["household_id"], rows[c]["non_compliant"], rows[c]["level"], rows[c]["field"])
           for c in ("C1", "C2", "C3")]
    assert got == [("C1", "H1", 400_000, "三级", None), ("C2", "H2", 123_450, "二级", None),
                   ("C3", None, None, None, None)]
    assert (rows["C4"]["row"], rows["C4"]["field"]) == (5, "non_compliant")
    assert "negative" in rows["C4"]["message"]


def test_two_columns_giving_one_attribute_refuse_the_run_naming_the_file(spark, tmp_path):
    from medaid.errors import MedaidError

    src = tmp_path / "claims.csv"
    src.write_text("claim_id,person_id,date,self_pay,level,医院等级\nC1,P1,2024-03-01,100,三级,三级\n",
                   encoding="utf-8")
    with pytest.raises(MedaidError) as e:
        read_claims(spark, str(src), "csv", LEVEL)
    p = e.value.problems[0]
    assert p.field == "level" and "claims.csv" in str(p.source) and "both give attribute level" in p.message
