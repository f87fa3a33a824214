"""Groups and kinds named as real exports name them (issue #11, item 15).

A county's export writes the beneficiary group (人员类别) as 特困人员, 低保对象, 建档立卡贫困人口 ...
and the claim kind (医疗类别) as 住院 or 门诊慢特病.  A rule file's ``[groups]`` and ``[kinds]``
tables list those names under the code the plans match (``key = ["特困人员", ...]``); a claim
naming a group or kind by one of them settles under the plan of its code, and the results
record the code.  The batch, the scalar engine, the desk and Spark resolve names the same way
(all through :meth:`medaid.domain.rules.RuleSet.plan`).

Figures by hand, shipped rules: key recipients' stay of 30,000 yuan: (10,000 − 1,000) × 70% +
(30,000 − 10,000) × 85% = 6,300 + 17,000 = 23,300; low-income stay of 30,000: (30,000 − 2,000) ×
60% = 16,800; key outpatient special disease, year mode, 70% above 200, at most 3,000 a visit:
a 30,000 visit gives (30,000 − 200) × 70% = 20,860, capped at 3,000.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import medaid
from medaid.batch.columnar import settle_frame
from medaid.cli import main
from medaid.errors import RuleError

ROOT = Path(__file__).resolve().parents[1]
RULE_FILE = ROOT / "rules" / "chongqing-county-2019.toml"

#: (group, kind as an export writes them) → (codes, relief in fen of a 30,000 yuan claim)
EXPORT_ROWS = [
    ("特困人员", "住院", "key", "inpatient", 2_330_000),
    ("低保对象", "住院", "key", "inpatient", 2_330_000),
    ("建档立卡贫困人口", "住院", "key", "inpatient", 2_330_000),
    ("特困人员", "门诊慢特病", "key", "outpatient-special", 300_000),
    ("低保边缘家庭成员", "住院", "low-income", "inpatient", 1_680_000),
    ("key", "inpatient", "key", "inpatient", 2_330_000),  # codes as before: unchanged
]


@pytest.fixture(scope="module")
def book():
    return medaid.load_rules(RULE_FILE)


def frame(rows) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame({
        "row": list(range(2, n + 2)), "claim_id": [f"C{i}" for i in range(n)],
        "person_id": [f"P{i}" for i in range(n)], "date": [dt.date(2019, 5, 1)] * n,
        "self_pay": [3_000_000] * n, "group": [r[0] for r in rows], "kind": [r[1] for r in rows],
    })


def test_an_exports_chinese_groups_and_kinds_settle_under_their_plans_and_results_carry_codes(book):
    results, rejects = settle_frame(frame(EXPORT_ROWS), book)
    assert rejects.height == 0
    assert results["relief"].to_list() == [r[4] for r in EXPORT_ROWS]
    assert results["group"].to_list() == [r[2] for r in EXPORT_ROWS]
    assert results["kind"].to_list() == [r[3] for r in EXPORT_ROWS]
    assert results["plan"].to_list() == [
        "key-inpatient", "key-inpatient", "key-inpatient", "key-outpatient-special",
        "low-income-inpatient", "key-inpatient"]


def test_the_scalar_engine_places_the_same_names_the_same_way(book):
    claims = [medaid.Claim(claim_id=f"C{i}", person_id=f"P{i}", date=dt.date(2019, 5, 1), self_pay=3_000_000,
                           group=g, kind=k) for i, (g, k, *_rest) in enumerate(EXPORT_ROWS)]
    got = medaid.settle(claims, book)
    assert [s.relief for s in got] == [r[4] for r in EXPORT_ROWS]
    assert [s.plan for s in got] == settle_frame(frame(EXPORT_ROWS), book)[0]["plan"].to_list()


def test_categories_as_the_batch_reads_them_are_resolved_too(book):
    f = frame(EXPORT_ROWS).with_columns(pl.col("group").cast(pl.Categorical), pl.col("kind").cast(pl.Categorical))
    results, _ = settle_frame(f, book)
    assert results["group"].cast(pl.String).to_list() == [r[2] for r in EXPORT_ROWS]
    assert results["relief"].to_list() == [r[4] for r in EXPORT_ROWS]


def test_a_name_no_table_lists_is_still_refused_naming_the_claim(book):
    results, rejects = settle_frame(frame([("特困", "住院")]), book)
    assert results.height == 0
    assert rejects["field"].to_list() == ["group/kind"]
    assert "matches group '特困' and kind '住院'" in rejects["message"][0]


def test_the_batch_command_reads_a_chinese_export(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("结算单号,人员编号,结算日期,合规自付费用,人员类别,医疗类别\n"
                   "A,P1,2019-05-01,30000,特困人员,住院\nB,P2,2019-05-01,30000,低保对象,门诊慢特病\n",
                   encoding="utf-8")
    out = tmp_path / "r.csv"
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(out), "--rules", str(RULE_FILE)])
    assert r.exit_code == 0, r.output
    res = pl.read_csv(out, infer_schema=False)
    assert res.select("group", "kind", "relief").rows() == [
        ("key", "inpatient", "23300.00"), ("key", "outpatient-special", "3000.00")]


def test_the_desk_settles_a_chinese_group_and_records_its_code(tmp_path):
    env = {"MEDAID_RULES": str(RULE_FILE), "MEDAID_LEDGER": str(tmp_path / "l.sqlite3")}
    runner = CliRunner()
    r = runner.invoke(main, ["settle", "--person", "P1", "--self-pay", "30000", "--date", "2019-05-01",
                             "--claim-id", "A", "--group", "特困人员", "--kind", "住院", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["relief"] == "23300.00"
    # the same claim given with the codes is the same content: replayed, not refused
    r = runner.invoke(main, ["settle", "--person", "P1", "--self-pay", "30000", "--date", "2019-05-01",
                             "--claim-id", "A", "--group", "key", "--kind", "inpatient", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["replayed"] is True
    r = runner.invoke(main, ["quote", "--person", "P2", "--self-pay", "30000", "--date", "2019-05-01",
                             "--group", "低保边缘", "--kind", "住院", "--ytd-self-pay", "0", "--ytd-relief", "0",
                             "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["relief"] == "16800.00"


# -- the tables are checked --------------------------------------------------------------------


def rules_with(tmp_path: Path, tables: str, match: str | None = None) -> Path:
    text = RULE_FILE.read_text(encoding="utf-8")
    start, end = text.index("[groups]"), text.index("[[plans]]")
    text = text[:start] + tables + "\n" + text[end:]
    if match is not None:
        text = text.replace('match = { group = ["low-income"], kind = ["inpatient"] }', match)
    p = tmp_path / "r.toml"
    p.write_text(text, encoding="utf-8")
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(RuleError) as info:
        medaid.load_rules(path)
    return [str(p) for p in info.value.problems]


def test_a_name_listed_under_two_codes_is_refused_naming_file_and_key(tmp_path):
    p = rules_with(tmp_path, '[groups]\nkey = ["特困人员", "低保对象"]\nlow-income = ["低保对象"]\n')
    assert problems(p) == [f"{p}: groups.low-income[0]: '低保对象' is listed also under 'key'; "
                           "a name may stand for one code only"]


def test_a_name_listed_twice_under_one_code_is_refused(tmp_path):
    p = rules_with(tmp_path, '[kinds]\ninpatient = ["住院", "住院"]\n')
    assert problems(p) == [f"{p}: kinds.inpatient[1]: '住院' is listed again; a name may stand for one code only"]


def test_a_name_that_is_another_code_is_refused(tmp_path):
    p = rules_with(tmp_path, '[groups]\nkey = ["low-income"]\nlow-income = ["低保边缘"]\n')
    assert problems(p) == [f"{p}: groups.key[0]: 'low-income' is a code of its own in [groups]; "
                           "a name may stand for one code only"]


def test_a_plan_matching_an_alias_of_a_pair_another_plan_matches_clashes(tmp_path):
    p = rules_with(tmp_path, '[groups]\nkey = ["特困人员"]\n',
                   match='match = { group = ["特困人员"], kind = ["inpatient"] }')
    (msg,) = problems(p)
    assert msg.startswith(f"{p}: plans[2].match: (group 'key', kind 'inpatient') is matched by plans[0] too")


def test_match_may_list_chinese_names_directly(tmp_path):
    p = rules_with(tmp_path, "", match='match = { group = ["低保边缘"], kind = ["住院"] }')
    book = medaid.load_rules(p)
    (s,) = medaid.settle([medaid.Claim(claim_id="A", person_id="P1", date=dt.date(2019, 5, 1),
                                       self_pay=3_000_000, group="低保边缘", kind="住院")], book)
    assert s.plan == "low-income-inpatient" and s.relief == 1_680_000


def test_the_shipped_file_lists_the_sources_categories(book):
    rs = book.versions()[0]
    for name in ("特困人员", "低保对象", "建档立卡贫困人口", "重点救助对象"):
        assert rs.group_code(name) == "key"
    assert rs.kind_code("住院") == "inpatient" and rs.kind_code("门诊慢特病") == "outpatient-special"
