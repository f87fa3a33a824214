"""One person keyed two ways is one person (issue #11, defect 6; docs/desk.md *Identifiers*).

The same ID number typed with full-width digits (５００…), with a lower-case check character
(…123x), with a zero-width space pasted in, or with spaces around it names one person, with one
year-to-date position and one annual cap, at the desk, in every batch format and on Spark; the
same goes for claim ids (a repeat keyed differently is a repeat).

By hand, from the bundled rules (key recipients, inpatient, annual cap 100,000): a 100,000 stay
is relieved 6,300 + 34,000 + 47,500 = 87,800.00, so the same person's next 30,000 stay (worth
23,300) gets only the 12,200.00 left of the cap, and a third stay gets 0.00.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings, strategies as st

import medaid
from medaid.cli import main
from medaid.domain.claims import LOWER_CHECK_PATTERN, PLAIN_ID_PATTERN, tidy_id
from medaid.io.readers import read_results
from medaid.io.validation import tidy_ids
from medaid.ledger.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
RULES = str(ROOT / "rules")
ID = "50010119800101123X"
#: the same ID number keyed four other ways
KEYED = [
    "５００１０１１９８００１０１１２３Ｘ",  # full-width digits and check character
    "50010119800101123x",  # lower-case check character
    "\u200b50010119800101123X",  # a zero-width space pasted in front
    "  50010119800101123X\u3000",  # spaces around it (an ideographic one at the end)
    "500101\u200d19800101123x\ufeff",  # a zero-width joiner inside, a BOM at the end
]


@pytest.mark.parametrize("keyed", KEYED)
def test_every_way_of_keying_the_id_number_is_the_same_id(keyed):
    assert tidy_id(keyed) == ID


@pytest.mark.parametrize("text, tidy", [
    ("  padded  ", "padded"),
    ("ZY２０２４\u00ad０５０３", "ZY20240503"),  # full-width digits, a soft hyphen
    ("zy-001 a", "zy-001 a"),  # letters keep their case, inner spaces stay
    ("12345678901234567x1", "12345678901234567x1"),  # not an ID number: its x is not a check character
    ("\u200b", ""),  # nothing left: refused where an id is required
])
def test_other_identifiers_are_tidied_the_same_way_and_nothing_more(text, tidy):
    assert tidy_id(text) == tidy


@given(st.text(max_size=24))
@example("0\n")  # a final line break: plain to Python's re, not to polars
@settings(max_examples=400, deadline=None)
def test_the_vectorised_look_sends_every_value_tidy_id_would_change(text):
    """What the batch leaves alone (plain printable ASCII, no ID number with a lower-case check
    character) is exactly what tidy_id leaves alone; and tidying twice changes nothing."""
    # the patterns are polars (Rust) regular expressions, where ``$`` is the end of the text
    # (in Python's re it also matches before a final line break: "0\n" would look plain)
    s = pl.Series([text])
    plain = s.str.contains(PLAIN_ID_PATTERN)[0] and not s.str.contains(LOWER_CHECK_PATTERN)[0]
    if plain:
        assert tidy_id(text) == text
    assert tidy_id(tidy_id(text)) == tidy_id(text)
    assert tidy_ids(pl.Series("person_id", [text, None])).to_list() == [tidy_id(text), None]


# -- at the desk -----------------------------------------------------------------------------


def _claim(cid: str, person: str, amount: str) -> medaid.Claim:
    return medaid.Claim.from_yuan(claim_id=cid, person_id=person, date="2024-05-03", self_pay=amount,
                                  group="key", kind="inpatient")


def test_a_person_keyed_five_ways_at_the_desk_gets_one_annual_cap(tmp_path):
    book = medaid.load_rules(RULES)
    with Ledger(tmp_path / "desk.sqlite3") as lg:
        reliefs = [lg.settle(_claim("C1", KEYED[0], "100000"), book).entry.relief]
        reliefs += [lg.settle(_claim(f"C{i}", k, "30000"), book).entry.relief for i, k in enumerate(KEYED[1:], 2)]
        assert reliefs == [8_780_000, 1_220_000, 0, 0, 0]  # 87,800 + 12,200 = the 100,000 cap
        assert {e.person_id for e in lg.entries()} == {ID}
        assert [e.claim_id for e in lg.history(KEYED[3])] == ["C1", "C2", "C3", "C4", "C5"]
        assert lg.ytd(KEYED[4], 2024, "inpatient").relief == 10_000_000
        # a claim id keyed another way is the same claim: replayed, or reversed
        assert lg.settle(_claim(" C1\u200b", ID, "100000"), book).replayed
        assert [e.claim_id for e in lg.history(ID)][-1] == "C5"
        assert lg.settle(_claim("Ｃ１", ID, "100000"), book).entry.seq == 1
        assert lg.reverse("\u200bC２ ", "typed twice").claim_id == "C2"


@pytest.fixture
def desk(tmp_path):
    runner = CliRunner()
    env = {"MEDAID_RULES": RULES, "MEDAID_LEDGER": str(tmp_path / "desk.sqlite3"), "MEDAID_LANG": "en"}

    def run(*args: str):
        r = runner.invoke(main, list(args), env=env)
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
        return r

    return run


def test_settle_quote_history_and_reverse_take_the_id_however_it_is_keyed(desk):
    key = ["--group", "key", "--kind", "inpatient", "--date", "2024-05-03"]
    r = desk("settle", "--person", KEYED[0], "--self-pay", "100000", "--claim-id", "  C1  ", *key, "--json")
    assert r.exit_code == 0, r.output
    assert (json.loads(r.output)["person_id"], json.loads(r.output)["claim_id"]) == (ID, "C1")
    r = desk("quote", "--person", KEYED[1], "--self-pay", "30000", *key, "--json")
    assert json.loads(r.output)["relief"] == "12200.00"  # 100,000 − 87,800 left of the cap
    r = desk("settle", "--person", KEYED[2], "--self-pay", "30000", "--claim-id", "C2", *key, "--json")
    assert json.loads(r.output)["relief"] == "12200.00"
    r = desk("history", KEYED[3], "--json")
    doc = json.loads(r.output)
    assert doc["person_id"] == ID and [e["claim_id"] for e in doc["entries"]] == ["C1", "C2"]
    r = desk("reverse", "  C2\u200b", "--reason", "typed twice", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["claim_id"] == "C2"
    r = desk("history", "  " + ID + "  ")  # padded: the same file as unpadded
    assert r.exit_code == 0 and "C2" in r.output and ID in r.output
    r = desk("settle", "--person", "\u200b", "--self-pay", "1", *key)
    assert r.exit_code == 2 and "must not be empty" in r.output


# -- in a batch, every format ----------------------------------------------------------------

HEADER = ["claim_id", "person_id", "date", "self_pay", "group", "kind"]
ROWS = [
    ["B1", KEYED[0], "2024-03-01", "100000", "key", "inpatient"],  # 87,800
    ["B2", KEYED[1], "2024-03-02", "30000", "key", "inpatient"],   # 12,200: the cap is reached
    ["B3", KEYED[2], "2024-03-03", "30000", "key", "inpatient"],   # 0
    ["B4", KEYED[3], "2024-03-04", "30000", "key", "inpatient"],   # 0
    ["Ｂ１", "P2", "2024-03-05", "30000", "key", "inpatient"],     # a repeat of B1, keyed full-width
    ["\u200b", "P2", "2024-03-06", "30000", "key", "inpatient"],   # an empty claim id
]
WANT = {"B1": 8_780_000, "B2": 1_220_000, "B3": 0, "B4": 0}


def _write(tmp: Path, fmt: str) -> Path:
    frame = pl.DataFrame([dict(zip(HEADER, r)) for r in ROWS])
    p = tmp / f"claims.{fmt.split('-')[0]}"
    if fmt == "csv-plain":  # no quote anywhere: the streaming scan reads it
        p.write_text("\n".join(",".join(r) for r in [HEADER, *ROWS]) + "\n", encoding="utf-8")
    elif fmt == "csv-quoted":  # a quote: the careful reader reads it
        p.write_text("\n".join(",".join(f'"{c}"' for c in r) for r in [HEADER, *ROWS]) + "\n", encoding="utf-8")
    elif fmt == "xlsx":
        frame.write_excel(p)
    elif fmt == "jsonl":
        frame.write_ndjson(p)
    else:
        frame.write_parquet(p)
    return p


@pytest.mark.parametrize("fmt", ["csv-plain", "csv-quoted", "xlsx", "jsonl", "parquet"])
def test_a_person_keyed_four_ways_in_a_batch_gets_one_annual_cap(tmp_path, fmt):
    src = _write(tmp_path, fmt)
    out, rej = tmp_path / "out.csv", tmp_path / "rej.csv"
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(out), "--rules", RULES, "--on-error", "skip",
                                  "--rejects", str(rej), "--json"])
    assert r.exit_code == 0, r.output
    res = read_results(out)
    assert dict(zip(res["claim_id"], res["relief"])) == WANT
    assert set(res["person_id"]) == {ID}
    first = 1 if fmt in ("jsonl", "parquet") else 2  # the line (or record) of the first claim
    rejects = pl.read_csv(rej, infer_schema=False)
    assert [(int(a), b) for a, b in zip(rejects["line"], rejects["field"])] == [
        (first + 4, "claim_id"), (first + 5, "claim_id")]
    assert f"duplicate claim id (first on line {first})" in rejects["reason"][0]


#: The ID number with control characters in it, as a damaged export or a scanner gives them
#: (no XLSX cell may hold them: CSV, JSON lines and Parquet only).
CONTROLLED = ["50010119800101123X\x00", "5001011980\x070101123X", "\t50010119800101123X\r"]


@pytest.mark.parametrize("keyed", CONTROLLED)
def test_a_control_character_in_the_id_number_is_invisible_too(keyed):
    assert tidy_id(keyed) == ID


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_control_characters_do_not_make_a_new_person_with_a_new_cap(tmp_path, fmt):
    frame = pl.DataFrame({"claim_id": ["C1", "C2", "C3"], "person_id": [ID, *CONTROLLED[:2]],
                          "date": ["2024-01-01", "2024-01-02", "2024-01-04"], "self_pay": ["100000"] * 3,
                          "group": ["key"] * 3, "kind": ["inpatient"] * 3})
    src = tmp_path / f"claims.{fmt}"
    {"csv": frame.write_csv, "jsonl": frame.write_ndjson, "parquet": frame.write_parquet}[fmt](src)
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(main, ["batch", str(src), "-o", str(out), "--rules", RULES, "--json"])
    assert r.exit_code == 0, r.output
    res = read_results(out)
    # one person, one annual cap of 100,000: 87,800, then the 12,200 left, then nothing
    assert dict(zip(res["claim_id"], res["relief"])) == {"C1": 8_780_000, "C2": 1_220_000, "C3": 0}
    assert set(res["person_id"]) == {ID}
    assert json.loads(r.output)["total"]["persons"] == 1


def test_recalc_matches_a_previous_file_whose_ids_were_keyed_otherwise(tmp_path):
    src = tmp_path / "claims.csv"
    src.write_text("\n".join(",".join(r) for r in [HEADER, *ROWS[:4]]) + "\n", encoding="utf-8")
    prev = tmp_path / "prev.csv"
    prev.write_text("claim_id,person_id,relief\n Ｂ１ ,50010119800101123x,87800.00\nB2,P9,12200.00\n"
                    "B3,P9,0.00\nB4,P9,0.00\n", encoding="utf-8")
    out = tmp_path / "recalc.csv"
    r = CliRunner().invoke(main, ["recalc", str(src), "--previous", str(prev), "-o", str(out), "--rules", RULES,
                                  "--json"])
    assert r.exit_code == 0, r.output
    got = pl.read_csv(out, infer_schema=False)
    assert dict(zip(got["claim_id"], got["status"])) == {"B1": "same", "B2": "same", "B3": "same", "B4": "same"}


def test_a_ledger_stores_the_tidy_id(tmp_path):
    book = medaid.load_rules(RULES)
    path = tmp_path / "desk.sqlite3"
    with Ledger(path) as lg:
        lg.settle(_claim("C1", KEYED[1], "30000"), book)
    con = sqlite3.connect(path)
    assert con.execute("SELECT person_id FROM entries").fetchall() == [(ID,)]
    con.close()
