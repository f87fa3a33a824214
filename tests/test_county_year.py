"""A county year, end to end (issue #14; docs/periods.md, *A county year, end to end*): two
hospitals' desks settle one-stop claims through the settlement service, the month's
applications are recorded from files with ``medaid batch FILE --ledger … --record``, and each of
the twelve months is declared, reviewed, approved and paid with its payment list per hospital
(拨付清单) and bank payout list per person (银行兑付清单), CSV and XLSX; then the year-end
``medaid report --targets`` against the plan and ``medaid ledger verify``.  Everything goes
through the real user interfaces: ``medaid …`` in subprocesses and the HTTP API of a running
``medaid serve``, on an SQLite ledger and on PostgreSQL (tests/conftest.py's cluster).

The rule (rules/chongqing-county-2019.toml, key recipients, inpatient, brackets per claim): of the
compliant self-pay, nothing below 1,000 yuan, 70% of 1,000–10,000, 85% of 10,000–50,000, 95%
above 50,000; rounded half-up to the fen; at most 100,000.00 a person a year (the annual cap,
one pool for both hospitals and for applications).  So f(x) for a claim alone:

* f(x) = 0.70 (x − 1,000) up to 10,000;  f(10,000) = 6,300
* f(x) = 6,300 + 0.85 (x − 10,000) up to 50,000;  f(50,000) = 40,300
* f(x) = 40,300 + 0.95 (x − 50,000) above

Every expected relief below is worked by hand in :data:`CLAIMS`' comments and checked once more
by :class:`Model`, a plain Fraction reference of that rule and of docs/periods.md's rule of which
period a row belongs to (its month, or the first period from its month on not yet declared when
it is recorded; a review's rejections in the period reviewed).  Nothing expected is computed by
medaid's engine, ledger or list code.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")
pytest.importorskip("polars", reason="batch and the lists need the batch extra: pip install 'medaid[batch]'")

import httpx  # noqa: E402
import openpyxl  # noqa: E402

try:
    from conftest import ledger_db
    from service_support import HOSPITAL_A, HOSPITAL_B, RULES, env, make_tokens, server
except ImportError:  # pragma: no cover
    from tests.conftest import ledger_db
    from tests.service_support import HOSPITAL_A, HOSPITAL_B, RULES, env, make_tokens, server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

A, B = HOSPITAL_A, HOSPITAL_B  # County People's Hospital, 县中医院
YEAR = 2024
MONTHS = [f"{YEAR}-{m:02d}" for m in range(1, 13)]

# The payees of the applications (bank accounts and names: personal data, in full only in the
# bank payout files).
PAYEES = {
    "P3": ("6222020200112233445", "李四"),
    "P4": ("6222021234561234", "张三"),
    "P13": ("6217003810000123456", "王五"),
    "P16": ("6228480012345678912", "赵六"),
    "P19": ("6212260200012345678", "欧阳小明"),
}


class C(NamedTuple):
    """One claim of the year: id, person, date, self-pay (yuan), hospital (a desk's one-stop
    claim) or None (an application, paid to the person's bank account), relief (yuan, by hand)."""

    cid: str
    person: str
    date: str
    self_pay: str
    hospital: str | None
    relief: str


# The year's claims, in the order they are settled.  "cap left" is 100,000 − the person's relief
# so far this year (desk claims and applications, both hospitals).
CLAIMS = [
    # January
    C("D01", "P2", "2024-01-08", "60000", A, "49800.00"),      # 40,300 + 0.95 × 10,000
    C("D02", "P3", "2024-01-15", "70000", B, "59300.00"),      # 40,300 + 0.95 × 20,000
    C("D03", "P7", "2024-01-22", "800", A, "0.00"),            # below the 1,000 threshold
    # February
    C("D04", "P2", "2024-02-05", "40000", B, "31800.00"),      # 6,300 + 0.85 × 30,000; P2: 81,600
    C("D05", "P8", "2024-02-19", "12345.67", A, "8293.82"),    # 6,300 + 0.85 × 2,345.67 = 8,293.8195
    C("A01", "P4", "2024-02-20", "12000", None, "8000.00"),    # 6,300 + 0.85 × 2,000
    # March (D08 is rejected at March's review)
    C("D06", "P1", "2024-03-05", "100000", A, "87800.00"),     # 40,300 + 0.95 × 50,000 (reversed in July)
    C("D07", "P9", "2024-03-12", "10000.10", B, "6300.09"),    # 6,300 + 0.85 × 0.10 = 6,300.085, half-up
    C("D08", "P10", "2024-03-18", "5000", A, "2800.00"),       # 0.70 × 4,000
    C("A02", "P3", "2024-03-20", "40000", None, "31800.00"),   # 6,300 + 25,500; P3: 91,100
    # April
    C("D09", "P1", "2024-04-10", "30000", B, "12200.00"),      # f = 23,300; cap left 100,000 − 87,800
    C("D10", "P11", "2024-04-16", "20000", A, "14800.00"),     # 6,300 + 0.85 × 10,000
    # May (D12 is rejected at May's review)
    C("D11", "P2", "2024-05-06", "30000", A, "18400.00"),      # f = 23,300; cap left 100,000 − 81,600
    C("D12", "P5", "2024-05-09", "100000", A, "87800.00"),
    C("D13", "P5", "2024-05-21", "20000", B, "12200.00"),      # f = 14,800; cap left 12,200
    # June
    C("D14", "P12", "2024-06-03", "8000", B, "4900.00"),       # 0.70 × 7,000
    C("A03", "P3", "2024-06-14", "20000", None, "8900.00"),    # f = 14,800; cap left 100,000 − 91,100
    C("A04", "P13", "2024-06-25", "25000", None, "19050.00"),  # 6,300 + 0.85 × 15,000
    # July (and D06 reversed: below)
    C("D15", "P11", "2024-07-02", "15000", A, "10550.00"),     # 6,300 + 0.85 × 5,000
    C("D16", "P14", "2024-07-11", "3000", B, "1400.00"),       # 0.70 × 2,000
    # August
    C("D17", "P2", "2024-08-08", "5000", B, "0.00"),           # f = 2,800; P2 is at the cap (100,000)
    C("D18", "P6", "2024-08-20", "6000", A, "3500.00"),        # 0.70 × 5,000
    C("A05", "P4", "2024-08-26", "9000", None, "5600.00"),     # 0.70 × 8,000
    # September: D19 is dated in August, settled after August was declared
    C("D19", "P6", "2024-08-28", "9000", B, "5600.00"),
    C("D20", "P15", "2024-09-10", "50000", A, "40300.00"),
    # October (A06 is rejected at October's review)
    C("D21", "P15", "2024-10-08", "70000", B, "59300.00"),     # cap left 59,700: not binding; P15: 99,600
    C("A06", "P16", "2024-10-15", "11000", None, "7150.00"),   # 6,300 + 0.85 × 1,000
    # November
    C("D22", "P15", "2024-11-04", "2000", A, "400.00"),        # f = 700; cap left 400
    C("D23", "P17", "2024-11-19", "18000", B, "13100.00"),     # 6,300 + 0.85 × 8,000
    # December
    C("D24", "P11", "2024-12-03", "70000", B, "59300.00"),     # P11: 14,800 + 10,550 + 59,300 = 84,650
    C("D25", "P18", "2024-12-16", "1000.01", A, "0.01"),       # 0.70 × 0.01 = 0.007, half-up
    C("A07", "P4", "2024-12-20", "60000", None, "49800.00"),   # P4: 8,000 + 5,600 + 49,800
    C("A08", "P19", "2024-12-28", "4000", None, "2100.00"),    # 0.70 × 3,000
]
BY_ID = {c.cid: c for c in CLAIMS}
LATE = {"D19": "2024-09"}  # settled in the month given, after its own month was declared

# The review's rejections, per period, and the reversal at a desk in July.
REJECT = {
    "2024-03": [("D08", "not an inpatient stay: day surgery")],
    "2024-05": [("D12", "duplicate of a stay paid by another county")],
    "2024-10": [("A06", "the account holder is not the patient")],
}
REVERSE_IN_JULY = ("D06", "admission record withdrawn by the hospital")
# By hand, what the corrections move:
# * March's review rejects D08: −2,800.00 at A in March (P10 has no later claim).
# * May's review rejects D12: −87,800.00 at A; D13 re-settled without it gets its full f(20,000)
#   = 14,800.00: an adjustment of +2,600.00 at B; both in May, the period reviewed.
# * July's reversal of D06 (dated March, paid in March): −87,800.00 at A, and D09 (April) gets
#   its full 23,300.00: +11,100.00 at B; both in July, the first period not yet declared.
# * October's review rejects A06: −7,150.00 on P16's bank line in October.
HAND_CORRECTIONS = {"D08": ("2024-03", -2_800_00), "D12": ("2024-05", -87_800_00), "D13": ("2024-05", 2_600_00),
                    "D06": ("2024-07", -87_800_00), "D09": ("2024-07", 11_100_00), "A06": ("2024-10", -7_150_00)}

TARGETS = """\
# the county's plan for 2024 (docs/report.md, "Targets file")
year = 2024
person_times = 30
budget = "600000.00"
fund_allocated = "600000.00"
fund_received = 2024-01-20
fund_due = 2024-01-31
"""
BUDGET = 600_000_00


# ----------------------------------------------------------------------------------------------
# the independent reference


def fen(yuan: str) -> int:
    """Yuan text with at most two decimals → fen (the test's own parsing)."""
    d = Decimal(yuan) * 100
    assert d == d.to_integral_value(), yuan
    return int(d)


def yuan(amount: int) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(amount) // 100}.{abs(amount) % 100:02d}"


def f(self_pay: int) -> int:
    """The bracket relief of one claim (fen), exact then half-up to the fen."""
    x = Fraction(self_pay)
    brackets = [(100_000, 1_000_000, Fraction(70, 100)), (1_000_000, 5_000_000, Fraction(85, 100)),
                (5_000_000, None, Fraction(95, 100))]
    total = sum((rate * max(Fraction(0), (x if hi is None else min(x, hi)) - lo) for lo, hi, rate in brackets),
                Fraction(0))
    return math.floor(total + Fraction(1, 2))


CAP = 100_000_00


@dataclass
class Standing:
    claim: C
    relief: int


@dataclass
class Model:
    """The year as the policy describes it: per person the claims that stand (in settlement
    order) with their relief, and every money movement with the period it belongs to."""

    declared: list[str] = field(default_factory=list)
    rows: int = 0  # the ledger rows so far: settlements, reversals, adjustments
    persons: dict[str, list[Standing]] = field(default_factory=lambda: defaultdict(list))
    # (period, payee, kind) → [count, amount]; a payee is a hospital or a (person, account, name)
    moves: dict[tuple[str, Any, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def landing(self, day: str) -> str:
        """The period a row dated ``day`` recorded now belongs to: its month, or the first
        period after it not yet declared (periods are declared in order)."""
        month = day[:7]
        later = [m for m in MONTHS if m >= month and m not in self.declared]
        return later[0]

    @staticmethod
    def payee(c: C) -> Any:
        return c.hospital if c.hospital else (c.person, *PAYEES[c.person])

    def _move(self, period: str, c: C, kind: str, amount: int) -> None:
        self.rows += 1
        slot = self.moves[(period, self.payee(c), kind)]
        slot[0] += 1
        slot[1] += amount

    def settle(self, c: C) -> int:
        mine = self.persons[c.person]
        granted = sum(s.relief for s in mine)
        relief = max(0, min(f(fen(c.self_pay)), CAP - granted, fen(c.self_pay)))
        mine.append(Standing(c, relief))
        self._move(self.landing(c.date), c, "settlement", relief)
        return relief

    def reverse(self, cid: str, reviewed: str | None = None) -> dict[str, int]:
        """Take the claim out and re-settle the person's later claims; the changes (fen) by
        claim id, the reversed one's negative."""
        c = BY_ID[cid]
        mine = self.persons[c.person]
        i = next(k for k, s in enumerate(mine) if s.claim.cid == cid)
        gone = mine.pop(i)
        changes = {cid: -gone.relief}
        self._move(reviewed or self.landing(c.date), c, "reversal", -gone.relief)
        granted = sum(s.relief for s in mine[:i])
        for s in mine[i:]:
            new = max(0, min(f(fen(s.claim.self_pay)), CAP - granted, fen(s.claim.self_pay)))
            if new != s.relief:
                changes[s.claim.cid] = new - s.relief
                self._move(reviewed or self.landing(s.claim.date), s.claim, "adjustment", new - s.relief)
                s.relief = new
            granted += s.relief
        return changes

    def lines(self, period: str) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]]]:
        """The expected hospital and bank lines of a period: per payee, counts and amounts."""
        hospitals: dict[Any, dict[str, int]] = {}
        bank: dict[Any, dict[str, int]] = {}
        for (p, payee, kind), (n, amount) in self.moves.items():
            if p != period:
                continue
            into = hospitals if isinstance(payee, str) else bank
            line = into.setdefault(payee, {"settlements": 0, "settled": 0, "reversals": 0, "reversed": 0,
                                           "adjustments": 0, "adjusted": 0, "net": 0})
            count, money = {"settlement": ("settlements", "settled"), "reversal": ("reversals", "reversed"),
                            "adjustment": ("adjustments", "adjusted")}[kind]
            line[count] += n
            line[money] += amount
            line["net"] += amount
        return hospitals, bank

    def standing(self) -> list[Standing]:
        return [s for mine in self.persons.values() for s in mine]


# ----------------------------------------------------------------------------------------------
# the interfaces


class Year(NamedTuple):
    backend: str
    ledger: str
    folder: Path
    model: Model
    answers: dict[str, dict[str, Any]]   # the API's or the batch's result of each claim, by id
    corrections: dict[str, int]          # what each reversal (and its adjustments) moved, by claim id
    lists: dict[str, Path]               # each period's folder of lists
    log: list[str]                       # what the walk saw go wrong (must stay empty)
    api: Any
    cache: dict[str, Any]


def medaid(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``medaid ARGS`` in a subprocess running the code under test (tests/service_support.env),
    which must succeed (exit 0)."""
    r = subprocess.run([sys.executable, "-m", "medaid.cli", *args], cwd=folder, capture_output=True, text=True,
                       env=env(MEDAID_RULES=str(RULES), MEDAID_LANG="en"), timeout=120)
    assert r.returncode == 0, f"medaid {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


class Api:
    def __init__(self, url: str, tokens: Any) -> None:
        self.client = httpx.Client(base_url=url, timeout=60)
        self.tokens = tokens

    def post(self, who: str, path: str, body: Any = None, status: int = 201) -> Any:
        r = self.client.post(path, json=body, headers={"Authorization": f"Bearer {getattr(self.tokens, who)}"})
        assert r.status_code == status, f"POST {path} as {who}: {r.status_code} {r.text}"
        return r.json()


def desk_settle(api: Api, c: C) -> dict[str, Any]:
    who = "desk_a" if c.hospital == A else "desk_b"  # each desk's token names its hospital
    total_cost = str(fen(c.self_pay) * 3 // 100)     # the stay cost three times the self-pay
    return api.post(who, "/v1/settle", {"claim_id": c.cid, "person_id": c.person, "self_pay": c.self_pay,
                                        "date": c.date, "group": "key", "kind": "inpatient",
                                        "total_cost": total_cost})


def application_file(folder: Path, month: str, claims: list[C]) -> Path:
    """The month's applications as the civil-affairs office exports them (Chinese headers)."""
    path = folder / f"applications-{month}.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        w = csv.writer(out)
        w.writerow(["结算单号", "人员编号", "结算日期", "合规自付费用", "救助对象类别", "就诊类型", "渠道",
                    "银行账号", "户名"])
        for c in claims:
            account, name = PAYEES[c.person]
            w.writerow([c.cid, c.person, c.date, c.self_pay, "key", "inpatient", "申请",
                        f"{account[:4]} {account[4:8]} {account[8:]}", name])
    return path


def walk(backend: str, ledger: str, folder: Path, log_path: Path) -> Iterator[Year]:
    """The county's year, month by month."""
    model = Model()
    answers: dict[str, dict[str, Any]] = {}
    corrections: dict[str, int] = {}
    lists: dict[str, Path] = {}
    log: list[str] = []
    tokens = make_tokens(ledger)
    with server(ledger, log=log_path) as srv:
        api = Api(srv.url, tokens)
        for month in MONTHS:
            cli_month = month <= "2024-03"  # the first quarter at the command line, then the API
            if cli_month:
                medaid(folder, "period", "open", month, "--ledger", ledger, "--by", "county health commission")
            else:
                assert api.post("admin", f"/v1/periods/{month}/open")["state"] == "open"
            settled_now = [c for c in CLAIMS if LATE.get(c.cid, c.date[:7]) == month]
            for c in (c for c in settled_now if c.hospital):
                answers[c.cid] = desk_settle(api, c)
                assert fen(answers[c.cid]["relief"]) == model.settle(c), c
            applications = [c for c in settled_now if not c.hospital]
            if applications:
                out = folder / f"applications-{month}.results.csv"
                r = medaid(folder, "batch", str(application_file(folder, month, applications)), "--ledger", ledger,
                           "--record", "-o", str(out), "--json")
                got = json.loads(r.stdout)
                n = len(applications)
                if (got.get("recorded"), got.get("already_recorded"), got.get("rejected")) != (n, 0, 0):
                    log.append(f"{month}: batch --record said {got}")
                with out.open(encoding="utf-8-sig", newline="") as rows:
                    for row in csv.DictReader(rows):
                        answers[row["结算单号"] if "结算单号" in row else row["claim_id"]] = row
                for c in applications:
                    relief = answers[c.cid].get("relief", answers[c.cid].get("救助金额"))
                    assert fen(relief) == model.settle(c), c
            if month == "2024-07":  # a desk reverses March's D06 after April's D09 was capped behind it
                cid, reason = REVERSE_IN_JULY
                r = api.post("desk_a", "/v1/reverse", {"claim_id": cid, "reason": reason})
                answers[f"reverse {cid}"] = r
                corrections.update(model.reverse(cid))
            # the month's cycle
            rejections = REJECT.get(month, [])
            if cli_month:
                r = medaid(folder, "period", "close", month, "--ledger", ledger, "--by", "county health commission",
                           "--json")
                declared = json.loads(r.stdout)
                review = [x for cid, why in rejections for x in ("--reject", cid, "--reason", why)]
                medaid(folder, "period", "review", month, "--ledger", ledger, *review, "--by", "civil affairs")
                medaid(folder, "period", "approve", month, "--ledger", ledger, "--by", "finance")
            else:
                if month == "2024-04":  # out of order: refused, nothing recorded
                    api.post("admin", f"/v1/periods/{month}/approve", status=409)
                declared = api.post("admin", f"/v1/periods/{month}/close")
                done = api.post("reviewer", f"/v1/periods/{month}/review",
                                {"rejections": [{"claim_id": cid, "reason": why} for cid, why in rejections]})
                rejected = sorted(o["claim_id"] for o in done["outcomes"] if o["outcome"] == "rejected")
                if rejected != sorted(cid for cid, _ in rejections):
                    log.append(f"{month}: the review rejected {rejected}")
                assert api.post("admin", f"/v1/periods/{month}/approve")["state"] == "approved"
            # every row settled, recorded or reversed so far is in the ledger (declared through it)
            assert (declared["state"], declared["through_seq"]) == ("declared", model.rows), (
                f"{month} declared through ledger row {declared['through_seq']}, but {model.rows} rows were "
                "settled, recorded or reversed so far")
            model.declared.append(month)
            for cid, _ in rejections:
                corrections.update(model.reverse(cid, reviewed=month))
            lists[month] = folder / "lists" / month
            lists[month].mkdir(parents=True)
            medaid(folder, "period", "pay", month, "--ledger", ledger, "-o", str(lists[month]), "--format", "both",
                   "--by", "finance")
        yield Year(backend, ledger, folder, model, answers, corrections, lists, log, api, {})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def year(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp(f"year-{request.param}")
    with ledger_db(request, request.param, folder) as db:
        yield from walk(request.param, db.location, folder, folder / "serve.log")


# ----------------------------------------------------------------------------------------------
# the lists


def read_csv(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def read_xlsx(path: Path) -> list[dict[str, Any]]:
    ws = openpyxl.load_workbook(path, read_only=True).active
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    return [dict(zip([str(h) for h in rows[0]], r, strict=True)) for r in rows[1:]]


MONEY_HEADERS = {"结算救助金额", "冲正金额", "调整金额", "拨付金额", "兑付金额", "应付金额"}
COUNT_HEADERS = {"结算笔数", "冲正笔数", "调整笔数"}


def normal(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A list's rows with money in fen and counts as numbers, however the file holds them
    (CSV text; XLSX numbers or text)."""
    def cell(header: str, v: Any) -> Any:
        if header in MONEY_HEADERS:
            return fen(str(v))
        if header in COUNT_HEADERS:
            return int(v)
        return "" if v is None else str(v)
    return [{h: cell(h, v) for h, v in r.items()} for r in rows]


COLUMNS = {"settlements": "结算笔数", "settled": "结算救助金额", "reversals": "冲正笔数", "reversed": "冲正金额",
           "adjustments": "调整笔数", "adjusted": "调整金额"}


def line_of(row: dict[str, str], net: str) -> dict[str, int]:
    out = {k: (int(row[h]) if k.endswith("s") else fen(row[h])) for k, h in COLUMNS.items()}
    out["net"] = fen(row[net])
    return out


def paid(year: Year, month: str) -> tuple[dict[Any, dict[str, int]], dict[Any, dict[str, int]], list[dict[str, str]]]:
    """A period's lists as written (CSV): per hospital, per (person, account, name), the summary."""
    folder = year.lists[month]
    hospitals = {r["医疗机构"]: line_of(r, "拨付金额") for r in read_csv(folder / f"{month}-hospitals.csv")}
    bank = {(r["人员编号"], r["银行账号"], r["户名"]): line_of(r, "兑付金额")
            for r in read_csv(folder / f"{month}-bank.csv")}
    return hospitals, bank, read_csv(folder / f"{month}-summary.csv")


def test_every_claim_gets_the_relief_worked_by_hand(year: Year) -> None:
    """At the desk (the API's answer) and from the applications' files (the batch's results):
    desks and applications, both hospitals, share one annual cap per person."""
    assert year.log == []
    for c in CLAIMS:
        got = year.answers[c.cid]
        relief = got["relief"] if "relief" in got else got["救助金额"]
        assert relief == c.relief, c
    # the reference agrees with the hand: every claim's relief when it was settled
    reference = Model()
    for c in CLAIMS:
        assert reference.settle(c) == fen(c.relief), c
    # the applications' results never show the account in full
    for c in (c for c in CLAIMS if not c.hospital):
        assert PAYEES[c.person][0] not in json.dumps(year.answers[c.cid], ensure_ascii=False)


def test_reversals_and_rejections_resettle_the_later_claims(year: Year) -> None:
    """Every person's file (一人一档, ``POST /v1/history``) at the year's end: the four claims
    reversed (three at a review, one at a desk) with their reasons, the two adjustments they made
    (D13 +2,600.00, D09 +11,100.00), and every claim's relief as it stands; bank accounts masked."""
    assert year.corrections == {cid: amount for cid, (_, amount) in HAND_CORRECTIONS.items()}  # the reference
    assert fen(year.answers["reverse D06"]["relief"]) == 87_800_00
    relief: dict[str, int] = {}
    reversed_: dict[str, str] = {}
    adjusted: dict[str, list[int]] = defaultdict(list)
    for person in sorted({c.person for c in CLAIMS}):
        history = year.api.post("reviewer", "/v1/history", {"person_id": person}, status=200)
        if person in PAYEES:
            text = json.dumps(history, ensure_ascii=False)
            assert PAYEES[person][0] not in text and PAYEES[person][1] not in text
        for e in history["entries"]:
            if e["entry"] == "settlement":
                relief[e["claim_id"]] = fen(e["relief"])
            elif e["entry"] == "reversal":
                reversed_[e["claim_id"]] = e["reason"]
            else:
                relief[e["claim_id"]] = fen(e["relief"])
                adjusted[e["claim_id"]].append(fen(e["adjustment"]))
    assert set(relief) == set(BY_ID)
    assert set(reversed_) == {"D06", "D08", "D12", "A06"}
    assert reversed_["D06"] == REVERSE_IN_JULY[1]
    for month, rejections in REJECT.items():
        for cid, why in rejections:
            assert month in reversed_[cid] and why in reversed_[cid], reversed_[cid]
    assert dict(adjusted) == {"D13": [2_600_00], "D09": [11_100_00]}
    standing = {cid: r for cid, r in relief.items() if cid not in reversed_}
    # by hand: as settled, but D13 (14,800.00) and D09 (23,300.00) re-settled
    assert standing == {**{c.cid: fen(c.relief) for c in CLAIMS if c.cid not in reversed_},
                        "D13": 14_800_00, "D09": 23_300_00}
    assert standing == {s.claim.cid: s.relief for s in year.model.standing()}  # the reference


@pytest.mark.parametrize("month", MONTHS)
def test_each_period_pays_each_hospital_and_account_what_its_rows_move(year: Year, month: str) -> None:
    want_h, want_b = year.model.lines(month)
    got_h, got_b, summary = paid(year, month)
    assert got_h == want_h
    assert got_b == want_b
    # the summary: one line per channel and the total, each the sum of its list
    by = {r["支付渠道"]: line_of(r, "应付金额") for r in summary}
    one_stop = next(v for k, v in by.items() if k.startswith("一站式"))
    bank = next(v for k, v in by.items() if k.startswith("事后申请"))
    total = by["合计"]
    for key in one_stop:
        assert one_stop[key] == sum(x[key] for x in want_h.values())
        assert bank[key] == sum(x[key] for x in want_b.values())
        assert total[key] == one_stop[key] + bank[key]
    # the XLSX lists hold the same lines as the CSV ones
    for name in ("hospitals", "bank", "summary"):
        folder = year.lists[month]
        assert normal(read_xlsx(folder / f"{month}-{name}.xlsx")) == normal(read_csv(folder / f"{month}-{name}.csv"))


def line(settlements: int, settled: int, reversals: int = 0, reversed_: int = 0, adjustments: int = 0,
         adjusted: int = 0) -> dict[str, int]:
    return {"settlements": settlements, "settled": settled, "reversals": reversals, "reversed": reversed_,
            "adjustments": adjustments, "adjusted": adjusted, "net": settled + reversed_ + adjusted}


# The lists of the months where the corrections land, worked by hand from CLAIMS (fen):
# (hospital lines, bank lines keyed by person).
HAND_LISTS = {
    # March: A settled D06 87,800 and D08 2,800; the review rejected D08: −2,800.  B: D07.
    "2024-03": ({A: line(2, 90_600_00, 1, -2_800_00), B: line(1, 6_300_09)}, {"P3": line(1, 31_800_00)}),
    # May: A settled D11 18,400 and D12 87,800; the review rejected D12: −87,800.  B settled D13
    # at 12,200 (capped behind D12) and, D12 gone, D13 gets its full 14,800: +2,600, in May.
    "2024-05": ({A: line(2, 106_200_00, 1, -87_800_00), B: line(1, 12_200_00, 0, 0, 1, 2_600_00)}, {}),
    # July: A settled D15 10,550 and a desk reversed March's D06 (−87,800): A owes 77,250 back.
    # B settled D16 1,400, and April's D09 (capped at 12,200 behind D06) gets 23,300: +11,100.
    "2024-07": ({A: line(1, 10_550_00, 1, -87_800_00), B: line(1, 1_400_00, 0, 0, 1, 11_100_00)}, {}),
    # August: D17 at B gets nothing (P2 is at the cap) but is a settlement of the month.
    "2024-08": ({A: line(1, 3_500_00), B: line(1, 0)}, {"P4": line(1, 5_600_00)}),
    # September: D19, dated 2024-08-28 but settled after August was declared, is September's.
    "2024-09": ({A: line(1, 40_300_00), B: line(1, 5_600_00)}, {}),
    # October: P16's application settled and rejected at the review: nothing to pay.
    "2024-10": ({B: line(1, 59_300_00)}, {"P16": line(1, 7_150_00, 1, -7_150_00)}),
}


@pytest.mark.parametrize("month", sorted(HAND_LISTS))
def test_the_corrections_land_where_the_policy_says(year: Year, month: str) -> None:
    """By hand: the review's rejections in the period reviewed; July's reversal of a claim of
    March, and the adjustment of April's claim it makes, in July; a claim dated in August settled
    after August was declared in September."""
    hospitals, bank, _ = paid(year, month)
    want_h, want_b = HAND_LISTS[month]
    assert hospitals == want_h
    assert bank == {(p, *PAYEES[p]): x for p, x in want_b.items()}
    assert sum(x["net"] for x in hospitals.values()) + sum(x["net"] for x in bank.values()) == sum(
        sum(x["net"] for x in d.values()) for d in (want_h, want_b))
    for cid, (at, amount) in HAND_CORRECTIONS.items():
        if at == month:
            c = BY_ID[cid]
            got = hospitals[c.hospital] if c.hospital else bank[(c.person, *PAYEES[c.person])]
            assert amount in (got["reversed"], got["adjusted"]), cid


def test_a_paid_period_never_changes(year: Year, tmp_path: Path) -> None:
    """March was paid before July's reversal of its D06: its lists, written again at the year's
    end, are byte for byte the ones paid."""
    again = tmp_path / "again"
    again.mkdir()
    medaid(year.folder, "period", "lists", "2024-03", "--ledger", year.ledger, "-o", str(again), "--format", "csv")
    for name in ("hospitals", "bank", "summary"):
        assert (again / f"2024-03-{name}.csv").read_bytes() == (
            year.lists["2024-03"] / f"2024-03-{name}.csv").read_bytes()
    periods = medaid(year.folder, "period", "list", "--ledger", year.ledger, "--json")
    assert [(p["period"], p["state"]) for p in json.loads(periods.stdout)] == [(m, "paid") for m in MONTHS]


def year_end_report(year: Year) -> dict[str, Any]:
    """``medaid report --ledger … --targets targets-2024.toml --json``, run once per ledger."""
    if "report" not in year.cache:
        targets = year.folder / "targets-2024.toml"
        targets.write_text(TARGETS, encoding="utf-8")
        r = medaid(year.folder, "report", "--ledger", year.ledger, "--targets", str(targets), "--json")
        year.cache["report"] = json.loads(r.stdout)
    return dict(year.cache["report"])


def test_the_year_reconciles_to_the_fen(year: Year) -> None:
    """Σ over the twelve periods' payment and bank lists = Σ relief of the claims that stand
    (net of reversals and adjustments) = the ledger's total; ``ledger verify`` passes."""
    paid_total = 0
    for month in MONTHS:
        hospitals, bank, summary = paid(year, month)
        paid_total += sum(x["net"] for x in hospitals.values()) + sum(x["net"] for x in bank.values())
    standing = sum(s.relief for s in year.model.standing())
    settled = sum(fen(c.relief) for c in CLAIMS)
    # by hand: Σ of the reliefs at settlement, then the corrections
    assert standing == settled + sum(amount for _, amount in HAND_CORRECTIONS.values())
    assert paid_total == standing == 550_393_92
    figures = {x["key"]: x for x in year_end_report(year)["figures"]}
    assert fen(figures["relief_total"]["value"]) == standing
    # 33 settlements, 4 reversals, 2 adjustments: 39 rows, each checked
    verify = medaid(year.folder, "ledger", "verify", "--ledger", year.ledger).stdout
    assert f" {year.model.rows} row(s)" in verify and "hash chain intact" in verify and year.model.rows == 39


def test_the_year_end_report_against_the_plan(year: Year) -> None:
    """``medaid report --targets``: person-times (claims that stand with relief > 0), budget use
    against the plan; every figure by hand from the table above."""
    ev = {x["key"]: x for x in year_end_report(year)["evaluation"]}
    standing = year.model.standing()
    # 33 claims, 4 reversed (D06, D08, D12, A06): 29 stand; D03 (below the threshold) and D17
    # (at the cap) have no relief: 27 person-times of a planned 30
    assert len(standing) == 29
    assert (ev["person_times"]["plan"], ev["person_times"]["value"]) == (30, 27)
    assert ev["person_times"]["of_plan"] == pct(27, 30) == "90.00"
    use = ev["budget_use"]
    assert fen(use["value"]) == 550_393_92
    assert use["of_plan"] == pct(550_393_92, BUDGET) == "91.73"
    assert fen(ev["budget_left"]["value"]) == BUDGET - 550_393_92
    assert ev["fund_arrival"]["of_plan"] == "100.00" and ev["fund_on_time"]["value"] == "100.00"
    # self-pay ratio on compliant self-pay: Σ (self-pay − relief) ÷ Σ self-pay of the claims that stand
    self_pay = sum(fen(s.claim.self_pay) for s in standing)
    assert ev["self_pay_ratio_compliant"]["value"] == pct(self_pay - 550_393_92, self_pay)
    # on all costs: the desks gave each stay's total cost (three times its self-pay, whole yuan);
    # the 7 applications did not
    desk = [s for s in standing if s.claim.hospital]
    pays = sum(fen(s.claim.self_pay) - s.relief for s in desk)
    cost = sum(fen(s.claim.self_pay) * 3 // 100 * 100 for s in desk)
    every = ev["self_pay_ratio_all"]
    assert (every["value"], every["rows"], every["missing"]) == (pct(pays, cost), 22, 7)


def test_the_year_end_report_gives_the_one_stop_rate(year: Year) -> None:
    """The one-stop settlement rate (一站式即时结算率): of the 29 claims that stand, 22 were
    settled at a hospital's desk, 7 were applications: 22 ÷ 29."""
    rate = {x["key"]: x for x in year_end_report(year)["evaluation"]}["one_stop_rate"]
    assert (rate["value"], rate["rows"], rate["missing"]) == (pct(22, 29), 29, 0) == ("75.86", 29, 0)


def pct(num: int, den: int) -> str:
    """num ÷ den as a percentage with 2 decimals, half-up (the test's own Decimal rounding)."""
    return str((Decimal(num) * 100 / Decimal(den)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
