"""Opening balances (docs/batch.md, *Opening balances*): a year settled month by month, each
month continuing the earlier months' results, gives exactly the per-claim results of the year
settled in one batch; claims already settled are reported, not settled twice; a claim the ledger
reversed is settled again, once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

import medaid
from medaid.batch.opening import OPENING_FIELDS, opening_from
from medaid.batch.settle import settle_frame
from medaid.cli import main
from medaid.io.results import read_results
from medaid.io.writers import write_frame
from test_columnar import books_and_claims, frame_of, load_texts

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "claims-2024.csv"
RULES = str(ROOT / "rules")
#: The per-claim results that must not depend on how the year was split.
SAME = ["claim_id", "plan", "pool", "benefit_year", "relief", "patient_pays", "bracket_relief",
        "capped_by", "bracket", "ytd_self_pay", "ytd_relief"]


def per_claim(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(pl.col(c).cast(pl.String) for c in SAME).sort("claim_id")


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr


SLOW = {"medaid.batch.arithmetic.SAFE": 1000}  # every group through the sequential path


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.sampled_from([{}, SLOW]))
def test_months_settled_in_sequence_with_openings_equal_the_year_in_one_batch(case, patches):
    """Generated rules (versions, pools, caps, gates, benefit years starting in other months)
    and claims: each month settled with the opening of every earlier month's results, written
    and read back as files, gives the one batch's results, claim by claim (on the prefix-sum
    path and on the sequential one)."""
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:  # a generated combination the rule checks refuse
        return
    with pytest.MonkeyPatch.context() as mp:
        for name, value in patches.items():
            mp.setattr(name, value)
        _months_equal_the_year(claims, book)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books_and_claims(), st.sampled_from([{}, SLOW]), st.data())
def test_the_columnar_opening_equals_the_engines(case, patches, data):
    """Any opening positions (relief so far above the annual cap too) seed the columnar
    settlement exactly as they seed :func:`medaid.settle`."""
    texts, claims = case
    try:
        book = load_texts(texts)
    except medaid.RuleError:
        return
    placed = {c.claim_id: medaid.domain.engine.placement(c, book) for c in claims}
    good = [c for c in claims if isinstance(placed[c.claim_id], medaid.Placement)]
    keys = sorted({(c.person_id, placed[c.claim_id].benefit_year, placed[c.claim_id].pool)
                   for c in good} | {("P1", 2021, "a")})  # (and one the batch does not meet)
    chosen = data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=6))
    relief_so_far = st.sampled_from([0, 1, 50_000, 2_000_000, 10**10]) | st.integers(0, 900_000)
    opening = {k: medaid.PoolState(data.draw(st.integers(0, 3_000_000)), data.draw(relief_so_far))
               for k in chosen}
    positions = pl.DataFrame(
        [(p, y, pool, st_.self_pay, st_.relief) for (p, y, pool), st_ in opening.items()],
        schema={"person_id": pl.String, "benefit_year": pl.Int32, "pool": pl.String,
                "c0": pl.Int64, "g0": pl.Int64}, orient="row")
    want = medaid.settle(good, book, opening=opening)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in patches.items():
            mp.setattr(name, value)
        got, _ = settle_frame(frame_of(claims), book, opening=positions)
    got = got.sort("claim_id")
    for s in sorted(want, key=lambda s: s.claim_id):
        row = got.row(by_predicate=pl.col("claim_id") == s.claim_id, named=True)
        assert (row["relief"], row["ytd_self_pay"], row["ytd_relief"], row["capped_by"], row["bracket_relief"]) \
            == (s.relief, s.ytd_self_pay, s.ytd_relief, s.capped_by, s.bracket_relief), s.claim_id


def _months_equal_the_year(claims: list[medaid.Claim], book: medaid.RuleBook) -> None:
    whole, whole_rejects = settle_frame(frame_of(claims), book)
    months = sorted({(c.date.year, c.date.month) for c in claims})
    parts, rejected = [], []
    with tempfile.TemporaryDirectory() as d:
        earlier: list[tuple[str, pl.DataFrame]] = []
        for y, m in months:
            month = [c for c in claims if (c.date.year, c.date.month) == (y, m)]
            res, rej = settle_frame(frame_of(month), book, opening=opening_from(earlier).positions)
            path = Path(d) / f"{y}-{m:02d}.results.csv"
            write_frame(res.drop("row"), path)
            earlier.append((str(path), read_results(path, required=OPENING_FIELDS)))
            parts.append(res)
            rejected.append(rej)
    got = pl.concat(parts, how="diagonal_relaxed") if parts else whole
    assert per_claim(got).equals(per_claim(whole))
    assert sorted(pl.concat(rejected)["claim_id"].to_list()) == sorted(whole_rejects["claim_id"].to_list())


def test_the_example_year_month_by_month_on_the_command_line_equals_the_yearly_batch(tmp_path):
    """The example year split by month, ``medaid batch MONTH --opening`` the earlier months'
    results in turn (XLSX, CSV and Parquet): the same claims, reliefs and totals as the year
    in one batch; December alone would have paid 1,329,929.28 instead of 1,243,223.39."""
    code, _, err = run("batch", str(EXAMPLE), "-o", str(tmp_path / "year.csv"), "--rules", RULES)
    assert code == 0, err
    year = read_results(tmp_path / "year.csv")
    raw = pl.read_csv(EXAMPLE, infer_schema=False)
    date = raw.columns[2]
    done: list[str] = []
    suffixes = [".xlsx", ".csv", ".parquet"]
    for m in range(1, 13):
        src = tmp_path / f"m{m:02d}.csv"
        raw.filter(pl.col(date).str.slice(5, 2) == f"{m:02d}").write_csv(src)
        out = str(tmp_path / f"m{m:02d}.results{suffixes[m % 3]}")
        opening = [a for p in done for a in ("--opening", p)]
        code, stdout, err = run("batch", str(src), "-o", out, "--rules", RULES, *opening, "--json")
        assert code == 0, err
        done.append(out)
    months = pl.concat([read_results(p).select(SAME) for p in done], how="vertical_relaxed")
    assert per_claim(months).equals(per_claim(year))
    assert months["relief"].sum() == year["relief"].sum()
    december = json.loads(stdout)
    assert december["total"]["relief"] == "1243223.39"
    code, alone, _ = run("batch", str(tmp_path / "m12.csv"), "-o", str(tmp_path / "alone.csv"),
                         "--rules", RULES, "--json")
    assert json.loads(alone)["total"]["relief"] == "1329929.28"


def test_claims_already_settled_are_reported_apart_not_settled_twice_and_the_run_succeeds(tmp_path):
    """January again with February, continuing January's results: under the default
    ``--on-error fail`` the run succeeds (exit 0), February is settled as if January had just
    been settled, and January's claims are counted apart (not rejected) and listed with their
    reason in the rejects file."""
    raw = pl.read_csv(EXAMPLE, infer_schema=False)
    date = raw.columns[2]
    jan = tmp_path / "jan.csv"
    raw.filter(pl.col(date).str.slice(5, 2) == "01").write_csv(jan)
    feb = tmp_path / "feb.csv"
    raw.filter(pl.col(date).str.slice(5, 2) == "02").write_csv(feb)
    code, _, err = run("batch", str(jan), "-o", str(tmp_path / "jan.results.csv"), "--rules", RULES)
    assert code == 0, err
    code, _, err = run("batch", str(feb), "-o", str(tmp_path / "feb-only.csv"), "--rules", RULES,
                       "--opening", str(tmp_path / "jan.results.csv"))
    assert code == 0, err
    again = tmp_path / "jan-feb.csv"
    raw.filter(pl.col(date).str.slice(5, 2) <= "02").write_csv(again)
    n_jan = raw.filter(pl.col(date).str.slice(5, 2) == "01").height
    n_feb = raw.filter(pl.col(date).str.slice(5, 2) == "02").height
    args = ["batch", str(again), "-o", str(tmp_path / "feb.results.csv"), "--rules", RULES,
            "--opening", str(tmp_path / "jan.results.csv")]
    code, out, err = run(*args)
    assert code == 0, err
    assert f"warning: {again}: {n_jan} claims already settled in the opening, reported, not settled twice" in err
    assert f"rows read {n_jan + n_feb} = settled {n_feb} + already settled {n_jan} + rejected 0" in out
    rejects = pl.read_csv(tmp_path / "feb.results.rejects.csv", infer_schema=False)
    assert rejects.height == n_jan
    assert set(rejects["reason"]) == {"already settled in " + str(tmp_path / "jan.results.csv")}
    assert per_claim(read_results(tmp_path / "feb.results.csv")).equals(
        per_claim(read_results(tmp_path / "feb-only.csv")))
    code, out, err = run(*args, "--json", "--on-error", "skip")
    assert code == 0, err
    got = json.loads(out)
    assert (got["settled"], got["already_settled"], got["rejected"]) == (n_feb, n_jan, 0)


def test_a_bad_row_still_fails_the_run_and_the_already_settled_are_not_counted_as_rejected(tmp_path):
    raw = pl.read_csv(EXAMPLE, infer_schema=False)
    date = raw.columns[2]
    jan = tmp_path / "jan.csv"
    raw.filter(pl.col(date).str.slice(5, 2) == "01").write_csv(jan)
    code, _, err = run("batch", str(jan), "-o", str(tmp_path / "jan.results.csv"), "--rules", RULES)
    assert code == 0, err
    bad = jan.read_text(encoding="utf-8-sig").splitlines()
    cells = bad[1].split(",")
    bad.append(",".join([cells[0] + "-new", cells[1], cells[2], "-5", *[""] * (len(cells) - 4)]))
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n", encoding="utf-8")
    code, _, err = run("batch", str(tmp_path / "bad.csv"), "-o", str(tmp_path / "x.csv"), "--rules", RULES,
                       "--opening", str(tmp_path / "jan.results.csv"))
    assert code == 1
    n_jan = len(bad) - 2
    assert f"settled 0 + already settled {n_jan} + rejected 1" in err
    assert not (tmp_path / "x.csv").exists()


def test_openings_of_another_year_or_pool_change_nothing(tmp_path):
    """Opening rows whose benefit year or pool no claim of the batch has are ignored."""
    frame = pl.read_csv(EXAMPLE, infer_schema=False)
    src = tmp_path / "dec.csv"
    frame.filter(pl.col(frame.columns[2]).str.slice(5, 2) == "12").write_csv(src)
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "plain.csv"), "--rules", RULES)
    assert code == 0, err
    plain = read_results(tmp_path / "plain.csv")
    other = plain.with_columns(pl.col("claim_id") + "-old", pl.col("benefit_year") - 1)
    pool = plain.with_columns(pl.col("claim_id") + "-other", pl.lit("elsewhere").alias("pool"))
    write_frame(pl.concat([other, pool]), tmp_path / "old.csv")
    code, _, err = run("batch", str(src), "-o", str(tmp_path / "again.csv"), "--rules", RULES,
                       "--opening", str(tmp_path / "old.csv"))
    assert code == 0, err
    assert per_claim(read_results(tmp_path / "again.csv")).equals(per_claim(plain))


def test_an_opening_file_that_is_not_results_is_refused_by_name(tmp_path):
    code, _, err = run("batch", str(EXAMPLE), "-o", str(tmp_path / "r.csv"), "--rules", RULES,
                       "--opening", str(EXAMPLE))
    assert code != 0 and str(EXAMPLE) in err and "Traceback" not in err
    code, _, err = run("batch", str(EXAMPLE), "-o", str(tmp_path / "r.csv"), "--rules", RULES,
                       "--opening", str(tmp_path / "r.csv"))
    assert code == 2 and "would overwrite the opening results" in err


def test_a_ledger_gives_the_opening_as_its_results_would(tmp_path):
    """``--ledger`` (formerly ``--opening-ledger``, still accepted): the desk's settlements of
    January–November open December as the
    same settlements' results file does; their claim ids are not settled again."""
    from medaid.cli.app import load_book
    from medaid.ledger import open_ledger

    raw = pl.read_csv(EXAMPLE, infer_schema=False)
    month = pl.col(raw.columns[2]).str.slice(5, 2)
    early, dec = tmp_path / "early.csv", tmp_path / "dec.csv"
    raw.filter(month <= "02").write_csv(early)
    raw.filter(month == "12").write_csv(dec)
    code, _, err = run("batch", str(early), "-o", str(tmp_path / "early.results.csv"), "--rules", RULES)
    assert code == 0, err
    book = load_book(RULES, None)
    ledger_path = tmp_path / "desk.sqlite3"
    results = read_results(tmp_path / "early.results.csv")
    with open_ledger(ledger_path) as db:
        for r in results.iter_rows(named=True):
            db.settle(medaid.Claim(claim_id=r["claim_id"], person_id=r["person_id"], date=r["date"],
                                   self_pay=r["self_pay"], group=r["group"], kind=r["kind"]), book)
    code, _, err = run("batch", str(dec), "-o", str(tmp_path / "by-file.csv"), "--rules", RULES,
                       "--opening", str(tmp_path / "early.results.csv"))
    assert code == 0, err
    for option in ("--ledger", "--opening-ledger"):
        code, _, err = run("batch", str(dec), "-o", str(tmp_path / "by-ledger.csv"), "--rules", RULES,
                           option, str(ledger_path))
        assert code == 0, err
        assert per_claim(read_results(tmp_path / "by-ledger.csv")).equals(
            per_claim(read_results(tmp_path / "by-file.csv")))
    code, out, err = run("batch", str(early), "-o", str(tmp_path / "again.csv"), "--rules", RULES,
                         "--ledger", str(ledger_path))
    assert code == 0 and f"settled 0 + already settled {results.height} + rejected 0" in out
    rejects = pl.read_csv(tmp_path / "again.rejects.csv", infer_schema=False)
    assert set(rejects["reason"]) == {f"already settled in {ledger_path}"}


def test_a_claim_the_ledger_reversed_is_settled_again_once_as_the_ledger_settles_it_after_a_reversal(tmp_path):
    """A claim id whose settlement the ledger reversed is not "already settled": the batch
    settles it as a new claim against the position of the claims that stand, exactly as
    ``medaid settle`` does after ``medaid reverse``; the reversed settlement counts for nothing,
    so the person is paid once.  By hand, the shipped rules (key, inpatient: brackets per stay,
    annual cap 100,000; the rule file's own example): R1 30,000 settled (23,300) and reversed;
    R2 100,000 stands (87,800); the batch's R1 gets what is left of the cap, 12,200 (not 0, as
    it would if the reversed R1 still counted), and R3 nothing."""
    from medaid.cli.app import load_book
    from medaid.ledger import open_ledger

    book = load_book(RULES, None)
    ledger_path = tmp_path / "desk.sqlite3"

    def claim(cid: str, day: str, yuan: int) -> medaid.Claim:
        return medaid.Claim(claim_id=cid, person_id="P1", date=day, self_pay=yuan * 100, group="key",
                            kind="inpatient")
    with open_ledger(ledger_path) as db:
        db.settle(claim("R1", "2024-01-10", 30_000), book)
        db.settle(claim("R2", "2024-02-10", 100_000), book)
        db.reverse("R1", "entered twice", book=book)
    src = tmp_path / "later.csv"
    src.write_text("claim_id,person_id,date,self_pay,group,kind\n"
                   "R1,P1,2024-01-10,30000,key,inpatient\nR3,P1,2024-03-10,5000,key,inpatient\n", encoding="utf-8")
    code, out, err = run("batch", str(src), "-o", str(tmp_path / "r.csv"), "--rules", RULES,
                         "--ledger", str(ledger_path))
    assert code == 0, err
    assert "settled 2 + already settled 0 + rejected 0" in out
    got = {r["claim_id"]: r for r in read_results(tmp_path / "r.csv").iter_rows(named=True)}
    assert (got["R1"]["relief"], got["R1"]["ytd_self_pay"], got["R1"]["ytd_relief"]) == (
        1_220_000, 13_000_000, 10_000_000)
    assert (got["R3"]["relief"], got["R3"]["capped_by"]) == (0, "annual_cap")
    # the ledger itself, settling R1 again after its reversal, gives the same
    with open_ledger(ledger_path) as db:
        assert db.settle(claim("R1", "2024-01-10", 30_000), book).entry.relief == got["R1"]["relief"]





def test_an_empty_ledger_opens_a_batch_as_no_opening(tmp_path):
    """A ledger nothing was recorded in yet gives no positions (its results have no rows, nor the
    columns a results file has): the batch settles as without ``--ledger``.  By hand, the shipped
    rules' key inpatient stay of 30,000: 23,300 (the rule file's own example); before, the run
    was refused ("cannot give opening balances: no benefit_year, pool, self_pay column")."""
    from medaid.ledger import open_ledger

    ledger = tmp_path / "empty.sqlite3"
    open_ledger(ledger).close()
    src = tmp_path / "claims.csv"
    src.write_text("claim_id,person_id,date,self_pay,group,kind\nE1,P1,2024-03-01,30000,key,inpatient\n",
                   encoding="utf-8")
    code, out, err = run("batch", str(src), "-o", str(tmp_path / "r.csv"), "--rules", RULES, "--ledger", str(ledger))
    assert code == 0, err
    assert "settled 1 + already settled 0 + rejected 0" in out
    assert read_results(tmp_path / "r.csv")["relief"].to_list() == [2_330_000]
