"""One table of English and Chinese labels (medaid.report.labels.LABELS): the report's, the batch
totals', the recalculation's and the desk's labels are looked up there, worded as before."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl

from medaid.report import explain as desk
from medaid.report.batch_text import summary_tables
from medaid.report.labels import LABELS, label, labels_of
from medaid.report.totals import summarise

SRC = Path(__file__).resolve().parents[1] / "src" / "medaid"


def test_every_label_has_an_english_and_a_chinese_text() -> None:
    for key, pair in LABELS.items():
        assert isinstance(pair, tuple) and len(pair) == 2 and all(pair), key


def test_the_desk_explanation_labels_are_the_desk_part_of_the_one_table() -> None:
    assert desk.LABELS == labels_of("desk")
    assert desk.LABELS["zh"]["relief"] == "救助金额" == label("desk.relief", "zh")
    assert desk.LABELS["en"]["cap_left"] == "Annual cap remaining"


def test_the_batch_totals_tables_take_their_headings_from_the_one_table() -> None:
    frame = pl.DataFrame({"person_id": ["P1"], "date": [dt.date(2024, 3, 1)],
                          "self_pay": [30000_00], "relief": [23300_00], "patient_pays": [6700_00],
                          "capped_by": [None], "plan": ["key"], "hospital": ["H1"]},
                         schema_overrides={"capped_by": pl.String})
    zh = summary_tables(summarise(frame), "zh")
    # the headings as worded in the issue: 合计, 按方案, 按月份, 按医疗机构（拨付清单）; the share 23,300 ÷ 30,000
    assert zh.startswith("合计\n") and "\n按方案\n" in zh and "\n按医疗机构（拨付清单）\n" in zh
    assert "救助比例" in zh and "77.67%" in zh
    en = summary_tables(summarise(frame), "en")
    assert en.startswith("Totals\n") and "By hospital (payment list)" in en


def test_no_module_picks_a_label_with_an_inline_language_test() -> None:
    """Texts chosen with ``"..." if zh else "..."`` (or ``if lang == "zh": return "..."``) belong
    in the one table."""
    inline = re.compile(r'if zh else|zh = lang == "zh"|if lang == "zh":\s*\n\s*return f?"')
    found = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if inline.search(p.read_text("utf-8"))]
    assert found == []
