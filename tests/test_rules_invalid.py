"""Each kind of mistake in a rule file is refused with a message naming the file, the key path
and what is allowed (issue #2 item 3).  One fixture file per mistake in ``tests/rules_invalid/``
(``overlap/`` is a folder: two versions of one scheme overlapping in time)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

import medaid

HERE = Path(__file__).parent / "rules_invalid"

# fixture → (key path the problem is at, words the message must contain).  Each fixture holds one
# mistake, so exactly one problem is expected: a second one would be noise for the user.
EXPECTED: dict[str, tuple[str | None, list[str]]] = {
    "unknown_key.toml": ("plans[0].anual_cap", ["unknown key", "allowed here", "annual_cap"]),
    "reserved_key.toml": ("content_hash", ["unknown key", "allowed here", "valid_from"]),
    "missing_key.toml": ("plans[0].pool", ["required key is missing"]),
    "wrong_type.toml": ("plans[0].pool", ["valid string", "got int"]),
    "wrong_type_bool.toml": ("plans[0].default", ["valid boolean", "got str"]),
    "wrong_type_month.toml": ("benefit_year_start_month", ["valid integer", "got float"]),
    "bad_rounding_method.toml": ("rounding.method", ["'bankers'", "half-up", "half-even", "down"]),
    "rate_out_of_range.toml": ("plans[0].brackets[2].rate", ["'105%'", "outside [0, 1]", "0% to 100%"]),
    "float_rate.toml": ("plans[0].brackets[0].rate", ["not floats", '"0.70"', '"70%"']),
    "float_amount.toml": ("plans[0].annual_cap", ["not floats", "quoted text", "whole numbers"]),
    "brackets_descending.toml": ("plans[0].brackets[1].from", ["ascending order", "50,000.00", "10,000.00"]),
    "bracket_to_not_above_from.toml": ("plans[0].brackets[1].to", ["must be above from", "ascend"]),
    "brackets_overlapping.toml": ("plans[0].brackets[1].from", ["overlaps", "10,000.00", "contiguous"]),
    "brackets_gapped.toml": ("plans[0].brackets[2].from", ["gap", "50,000.00", "contiguous"]),
    "open_bracket_not_last.toml": ("plans[0].brackets[0].to", ["only the last bracket", "open-ended"]),
    "whole_mode_closed_last.toml": ("plans[0].brackets[1].to", ["whole mode", "open-ended"]),
    "whole_mode_rates_descend.toml": ("plans[0].brackets[1].rate",
                                      ["whole mode", "70% after 85%", "less relief", "must not fall"]),
    "negative_cap.toml": ("plans[0].annual_cap", ["negative", "0 or more"]),
    "bad_date.toml": ("valid_from", ["'2024-02-30'", "not a date", "YYYY-MM-DD"]),
    "valid_to_before_valid_from.toml": ("valid_to", ["2023-12-31", "before valid_from", "on or after"]),
    "duplicate_plan_name.toml": ("plans[1].name", ["duplicate plan name", "'key-inpatient'", "plans[0]", "unique"]),
    "two_plans_same_match.toml": ("plans[1].match", ["'key'", "'inpatient'", "plans[0]", "one plan only"]),
    "example_wrong.toml": ("plans[0].examples[2].relief", ["40,300.00", "50,000.00", "states 40,000.00"]),
    "pool_caps_differ.toml": ("plans[1].annual_cap", ["pool 'inpatient'", "one annual cap", "plans[0]"]),
    "second_stage_unknown.toml": ("plans[1].second", ["no second stage named 'qingxi'", "declared", "'qingxie'"]),
    "second_stage_shared_invalid.toml": ("second_stages.qingxie.brackets[0].rate", ["'150%'", "outside [0, 1]"]),
    "not_toml.toml": (None, ["not valid TOML", "line 2"]),
}


def problems_of(path: Path) -> list[medaid.Problem]:
    with pytest.raises(medaid.RuleError) as info:
        medaid.load_rules(path)
    return list(info.value.problems)


def test_every_fixture_has_expectations():
    files = {p.name for p in HERE.glob("*.toml")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_invalid_rule_file_is_refused_saying_where_and_what_is_allowed(name):
    field, words = EXPECTED[name]
    problems = problems_of(HERE / name)
    assert len(problems) == 1, [str(p) for p in problems]
    (p,) = problems
    text = str(p)
    assert p.source is not None and p.source.endswith(name)
    assert text.startswith(p.source)
    if field is not None:
        assert p.field == field
        assert f": {field}: " in text
    for w in words:
        assert w in p.message, (w, text)


def test_two_versions_of_one_scheme_overlapping_in_time_are_refused():
    problems = problems_of(HERE / "overlap")
    assert len(problems) == 1
    (p,) = problems
    assert p.source is not None and p.source.endswith("v2024.toml")
    assert p.field == "valid_from"
    for w in ["'2024'", "'2019'", "v2019.toml", "overlap", "open-ended", "valid_to"]:
        assert w in p.message, w


def test_each_version_alone_is_valid():
    for f in sorted((HERE / "overlap").glob("*.toml")):
        assert medaid.load_rules(f).versions()[0].source == str(f)


def test_a_folder_reports_the_problems_of_every_file_together(tmp_path):
    for name in ("unknown_key.toml", "negative_cap.toml"):
        (tmp_path / name).write_bytes((HERE / name).read_bytes())
    problems = problems_of(tmp_path)
    assert sorted(Path(p.source).name for p in problems) == ["negative_cap.toml", "unknown_key.toml"]


def test_a_missing_path_is_named(tmp_path):
    (p,) = problems_of(tmp_path / "nope.toml")
    assert p.source == str(tmp_path / "nope.toml") and "no such" in p.message


def test_rates_are_kept_exactly_however_many_digits(tmp_path):
    third = "33.3333333333333333333333333333333333"  # 36 significant digits, beyond Decimal's 28
    body = (HERE / "overlap" / "v2024.toml").read_text(encoding="utf-8")
    body = body.replace('"70%"', f'"{third}%"')
    (tmp_path / "r.toml").write_text(body, encoding="utf-8")
    book = medaid.load_rules(tmp_path / "r.toml")
    rs = book.versions()[0]
    rate = rs.plans[0].brackets[0].rate
    assert str(rate) == "0.333333333333333333333333333333333333"
    sched = book.schedule(rs, rs.plans[0])
    assert Fraction(sched.rate_nums[0], sched.scale) == Fraction(int("3" * 36), 10**36)


def test_one_version_label_used_twice_in_a_scheme_is_refused_even_when_not_adjacent(tmp_path):
    # results record (scheme id, version): two files under one label could not be told apart
    body = (HERE / "overlap" / "v2019.toml").read_text(encoding="utf-8")
    for name, version, start, end in [("a.toml", "A", "2019-01-01", "2019-12-31"),
                                      ("b.toml", "B", "2020-01-01", "2020-12-31"),
                                      ("c.toml", "A", "2021-01-01", None)]:
        text = body.replace('version = "2019"', f'version = "{version}"').replace("2019-01-01", start)
        if end:
            text = text.replace(f"valid_from = {start}", f"valid_from = {start}\nvalid_to = {end}")
        (tmp_path / name).write_text(text, encoding="utf-8")
    (p,) = problems_of(tmp_path)
    assert p.source is not None and p.source.endswith("c.toml") and p.field == "version"
    assert "'A'" in p.message and "a.toml" in p.message


def test_docs_rules_md_documents_every_key_of_the_format():
    from medaid.domain.rules import (
        Attribute,
        Bracket,
        CapPool,
        Example,
        ExampleClaim,
        Grant,
        Match,
        Plan,
        Rounding,
        RuleSet,
        Scenario,
        SecondStage,
    )

    doc = (Path(__file__).parent.parent / "docs" / "rules.md").read_text(encoding="utf-8")
    for model in (RuleSet, Rounding, Plan, Match, Bracket, Example, Attribute, CapPool, Grant,
                  SecondStage, ExampleClaim, Scenario):
        for name, f in model.model_fields.items():
            key = f.alias or name
            if name in ("source", "content_hash"):  # set by medaid: documented as not allowed
                assert f"`{key}`" in doc
                continue
            assert (f"| `{key}` |" in doc or f"| `match.{key}` |" in doc or f"| `rounding.{key}` |" in doc
                    or f"`{key}`," in doc or f", `{key}` |" in doc), (model.__name__, key)


def test_a_rule_file_saved_with_a_byte_order_mark_loads(tmp_path):
    # Windows editors (Notepad) save UTF-8 with a BOM; the file is otherwise valid
    body = (HERE / "overlap" / "v2024.toml").read_bytes()
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + body)
    assert medaid.load_rules(tmp_path / "bom.toml").versions()[0].version == "2024"


def test_versions_of_one_scheme_must_share_the_benefit_year_start_month():
    problems = problems_of(HERE / "start_month")
    assert len(problems) == 1, [str(p) for p in problems]
    (p,) = problems
    assert p.source is not None and p.source.endswith("v2024.toml")
    assert p.field == "benefit_year_start_month"
    for w in ["4 differs from 1", "'2019'", "v2019.toml", "must share it"]:
        assert w in p.message, w
