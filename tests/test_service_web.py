"""The clerk's web page (/desk) in a real headless Chromium (Debian's, driven by Playwright):
sign in with a token, settle, read the receipt, look up the person's history, reverse with a
reason; in Chinese too; on an SQLite file and on PostgreSQL, where the other hospital's clerk, on
the command line, settles the same person through the same service against the same cap.
And, without a browser: CSRF, the session cookie's flags, no external
assets, revoking a token ends its sessions.  Under rules with a hospital-level attribute, a
household cap pool and a second stage (``LEVELS``), the settle form's extra fields, in both."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from html import unescape
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from extended_books import HEAD, cap_pool  # noqa: E402
from medaid.service.app import create_app  # noqa: E402
from medaid.service.store import Settings, open_ledger  # noqa: E402
from medaid.service.tokens import TokenStore  # noqa: E402
from medaid.service.web import SESSION_COOKIE  # noqa: E402

try:
    from conftest import ledger_db
    from service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, env, make_tokens, server
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.conftest import ledger_db
    from tests.service_support import HOSPITAL_A, HOSPITAL_B, PERSON, RULES, env, make_tokens, server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def county(request, tmp_path):
    """The county's ledger (an SQLite file, or the backend a test names by indirect
    parametrisation: tests/conftest.py) and its tokens."""
    with ledger_db(request, getattr(request, "param", "sqlite"), tmp_path) as db:
        yield db, make_tokens(db)


@pytest.fixture
def client(county):
    with TestClient(create_app(Settings(str(county[0]), str(RULES)))) as c:
        yield c


def _cli(args: list[str], **extra: str) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "medaid.cli", *args], capture_output=True, text=True,
                       env=env(**extra), timeout=120)
    return p.returncode, p.stdout, p.stderr


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _sign_in(client, secret: str):
    page = client.get("/desk")
    return client.post("/desk/sign-in", data={"token": secret, "csrf": _csrf(page.text), "lang": "en"},
                       follow_redirects=False)


def test_sign_in_sets_an_httponly_strict_session_cookie_and_the_page_loads_nothing_from_elsewhere(client, county):
    r = _sign_in(client, county[1].desk_a)
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "medaid_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace(
        "Strict", "strict") and "Path=/desk" in cookie
    page = client.get("/desk")
    assert HOSPITAL_A.replace("'", "&#39;") in page.text and 'id="settle-form"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r'(src|href)="(https?:)?//', page.text) and "<script" not in page.text


def test_a_form_without_the_sessions_csrf_token_is_refused_and_nothing_is_recorded(client, county):
    _sign_in(client, county[1].desk_a)
    body = {"person_id": PERSON, "self_pay": "30000", "date": "2024-05-03", "group": "key", "kind": "inpatient",
            "claim_id": "W1", "lang": "en"}
    for csrf in ("", "forged"):
        r = client.post("/desk/settle", data={**body, "csrf": csrf})
        assert r.status_code == 403 and "The form has expired" in r.text
    with open_ledger(str(county[0]), create=False) as lg:
        assert list(lg.entries()) == []
    ok = client.post("/desk/settle", data={**body, "csrf": _csrf(client.get("/desk").text)})
    assert ok.status_code == 200 and "23,300.00" in ok.text


def test_the_settle_form_carries_a_claim_id_so_sending_it_twice_settles_once(client, county):
    _sign_in(client, county[1].desk_a)
    html = client.get("/desk").text
    cid = re.search(r'id="claim_id" name="claim_id" value="([^"]+)"', html).group(1)
    assert re.fullmatch(r"\d{8}-[0-9A-F]{6}", cid)
    body = {"person_id": PERSON, "self_pay": "30000", "date": "2024-05-03", "claim_id": cid, "csrf": _csrf(html)}
    first, again = client.post("/desk/settle", data=body), client.post("/desk/settle", data=body)
    assert "23,300.00" in first.text and 'id="replayed"' not in first.text
    assert 'id="replayed"' in again.text and "23,300.00" in again.text
    assert cid not in re.search(r'id="claim_id" name="claim_id" value="([^"]+)"', first.text).group(1)
    with open_ledger(str(county[0]), create=False) as lg:
        assert [e.claim_id for e in lg.entries()] == [cid]


def test_a_form_with_an_action_the_page_does_not_have_records_nothing(client, county):
    _sign_in(client, county[1].desk_a)
    body = {"person_id": PERSON, "self_pay": "30000", "date": "2024-05-03", "group": "key", "kind": "inpatient",
            "claim_id": "W1", "lang": "en", "csrf": _csrf(client.get("/desk").text)}
    r = client.post("/desk/settle", data={**body, "action": "nuke"})  # only settle or quote
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "action", r.text
    with open_ledger(str(county[0]), create=False) as lg:
        assert list(lg.entries()) == []


def test_a_sign_in_without_its_csrf_cookie_or_with_a_bad_token_is_refused(client, county):
    assert client.post("/desk/sign-in", data={"token": county[1].desk_a, "csrf": "x"}).status_code == 403
    page = client.get("/desk")
    bad = client.post("/desk/sign-in", data={"token": county[1].revoked, "csrf": _csrf(page.text)})
    assert bad.status_code == 401 and "unknown or revoked" in bad.text


def test_revoking_the_token_ends_its_web_sessions(client, county):
    _sign_in(client, county[1].desk_a)
    assert 'id="settle-form"' in client.get("/desk").text
    with open_ledger(str(county[0])) as lg:
        TokenStore(lg).revoke(county[1].ids["desk_a"])
    assert 'id="sign-in-form"' in client.get("/desk").text


def test_a_bad_form_names_its_field(client, county):
    _sign_in(client, county[1].desk_a)
    r = client.post("/desk/settle", data={"person_id": PERSON, "self_pay": "1.234", "csrf": _csrf(
        client.get("/desk").text), "lang": "en"})
    assert r.status_code == 422 and "<strong>self_pay</strong>: has more than two decimals" in r.text


def test_a_reviewer_may_look_up_but_not_settle(client, county):
    _sign_in(client, county[1].reviewer)
    csrf = _csrf(client.get("/desk").text)
    r = client.post("/desk/settle", data={"person_id": PERSON, "self_pay": "1", "csrf": csrf})
    assert r.status_code == 403 and "may not settle" in r.text
    assert client.post("/desk/history", data={"person_id": PERSON, "csrf": csrf}).status_code == 200


# -- who may use the page, on both backends -------------------------------------------------------

#: Every form of the page that acts for a signed-in clerk, with a body it would accept.
FORMS = {
    "/desk/settle": {"person_id": PERSON, "self_pay": "30000", "date": "2024-05-03", "claim_id": "W9",
                     "group": "key", "kind": "inpatient"},
    "/desk/history": {"person_id": PERSON},
    "/desk/reverse": {"claim_id": "W0", "reason": "not ours"},
}


def _written(ledger) -> tuple:
    """What a refused form must not change: the ledger's rows, the tokens, the sessions."""
    return (ledger.rows("SELECT seq, entry, claim_id FROM entries ORDER BY seq"),
            ledger.rows("SELECT id, revoked_at FROM tokens ORDER BY id"),
            ledger.rows("SELECT count(*) FROM desk_sessions"))


def _settled_by_a(client, tokens) -> None:
    """Hospital A's claim W0 (30,000 yuan), through the API."""
    r = client.post("/v1/settle", json={**FORMS["/desk/settle"], "claim_id": "W0"},
                    headers={"Authorization": f"Bearer {tokens.desk_a}"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("county", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("path", list(FORMS))
@pytest.mark.parametrize("who", ["no session", "a forged session", "a revoked token's session"])
def test_every_form_without_a_live_session_gets_the_sign_in_page_and_writes_nothing(client, county, path, who):
    ledger, tokens = county
    _settled_by_a(client, tokens)
    csrf = "x"
    if who == "a forged session":
        client.cookies.set(SESSION_COOKIE, "s" * 43, path="/desk")
    elif who == "a revoked token's session":
        _sign_in(client, tokens.desk_a)
        csrf = _csrf(client.get("/desk").text)
        with open_ledger(str(ledger)) as lg:
            TokenStore(lg).revoke(tokens.ids["desk_a"])
    before = _written(ledger)
    r = client.post(path, data={**FORMS[path], "csrf": csrf, "lang": "en"})
    assert r.status_code == 401 and 'id="sign-in-form"' in r.text
    assert PERSON not in r.text and "23,300.00" not in r.text  # nothing of the ledger shown
    assert _written(ledger) == before


@pytest.mark.parametrize("county", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("signed_in", ["desk_b", "reviewer"])
def test_another_hospitals_desk_or_a_reviewer_may_not_reverse_on_the_page(client, county, signed_in):
    ledger, tokens = county
    _settled_by_a(client, tokens)
    _sign_in(client, getattr(tokens, signed_in))
    before = _written(ledger)
    r = client.post("/desk/reverse", data={**FORMS["/desk/reverse"], "csrf": _csrf(client.get("/desk").text)})
    assert r.status_code == 403, r.text
    assert _written(ledger) == before


# -- in a real browser ----------------------------------------------------------------------------


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no headless browser: /usr/bin/chromium is not installed (apt-get install chromium; CI does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is in the test extra")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.mark.parametrize("county", ["sqlite", "postgresql"], indirect=True)
def test_a_clerk_signs_in_settles_prints_the_receipt_looks_up_and_reverses(browser, county, tmp_path):
    ledger, tokens = county
    with server(str(ledger), log=tmp_path / "serve.log") as srv:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: errors.append(r.url))
        page.goto(f"{srv.url}/desk")
        page.fill("#token", tokens.desk_a)
        page.click("#sign-in")
        page.wait_for_selector("#settle-form")
        assert HOSPITAL_A in page.inner_text("#who")
        # settle a 30,000 yuan stay: 6,300 + 17,000 = 23,300 relief, the patient pays 6,700
        page.fill("#person_id", PERSON)
        page.fill("#self_pay", "30,000")
        page.fill("#date", "2024-05-03")
        page.fill("#claim_id", "WEB-1")
        page.fill("#group", "key")
        page.fill("#kind", "inpatient")
        page.click("#settle")
        page.wait_for_selector("#receipt")
        receipt = page.inner_text("#receipt")
        for text in (HOSPITAL_A, "WEB-1", PERSON, "2024-05-03", "1,000.00 – 10,000.00", "70%", "6,300.00",
                     "17,000.00", "cq-county-medical-aid 2019.1", "Legal basis", "Recorded as ledger row 1"):
            assert text in receipt, text
        assert page.inner_text("#r-relief").strip() == "23,300.00"
        assert page.inner_text("#r-pays").strip() == "6,700.00"
        assert page.inner_text("#r-ytd").strip() == "23,300.00 / 100,000.00"
        assert page.inner_text("#r-left").strip() == "76,700.00"
        assert "Relief by brackets (rounded)" in page.inner_text("#explanation")
        pdf = tmp_path / "receipt.pdf"
        page.pdf(path=str(pdf))  # printable: the print stylesheet keeps the receipt alone
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000
        page.emulate_media(media="print")
        assert page.is_hidden("#settle-section") and page.is_visible("#receipt")
        page.emulate_media(media="screen")
        # meanwhile the other hospital's clerk settles the same person on the command line, against the
        # same cap: 100,000 yuan would get 87,800, but 76,700 is left
        rc, out, err = _cli(["settle", "--person", PERSON, "--self-pay", "100000", "--date", "2024-05-04",
                             "--claim-id", "CLI-1", "--group", "key", "--kind", "inpatient", "--json"],
                            MEDAID_SERVER=srv.url, MEDAID_TOKEN=tokens.desk_b)
        assert rc == 0, err
        assert (json.loads(out)["relief"], json.loads(out)["capped_by"]) == ("76700.00", "annual_cap")
        # the person's file shows both hospitals; desk A may reverse its own claim only
        page.fill("#h_person_id", PERSON)
        page.click("#look-up")
        page.wait_for_selector("#history")
        history = page.inner_text("#history")
        assert "WEB-1" in history and "CLI-1" in history and HOSPITAL_B in history and "76,700.00" in history
        assert page.locator("#history .reverse-form").count() == 1
        page.fill("#history .reverse-form input[name=reason]", "wrong stay entered")
        page.click("#history .reverse-form button")
        page.wait_for_selector("#reversal")
        assert "Reversed claim WEB-1" in page.inner_text("#reversal")
        assert page.inner_text("#rev-ytd").strip() == "76,700.00 / 100,000.00"
        # CLI-1 re-settled without WEB-1: 87,800 instead of 76,700 (docs/calculation.md)
        assert "claim CLI-1 (row 2), relief 87,800.00, adjustment 11,100.00" in page.inner_text("#reversal")
        # in Chinese
        page.click("#language")
        page.wait_for_selector("#settle-form")
        page.fill("#person_id", PERSON)
        page.fill("#self_pay", "12345.67")
        page.fill("#date", "2024-05-04")
        page.fill("#claim_id", "WEB-2")
        page.click("#settle")
        page.wait_for_selector("#receipt")
        zh = page.inner_text("#receipt")
        assert "医疗救助结算单" in zh and "救助金额" in zh and "个人负担" in zh and "政策依据" in zh
        # 6,300 + 2,345.67 × 85% = 8,293.8195 → 8,293.82; the patient pays 4,051.85
        assert page.inner_text("#r-relief").strip() == "8,293.82" and page.inner_text("#r-pays").strip() == "4,051.85"
        page.click("#sign-out")
        page.wait_for_selector("#sign-in-form")
        assert errors == []
    with open_ledger(str(ledger), create=False) as lg:
        rows = list(lg.entries())
        assert [(e.claim_id, e.entry, e.desk) for e in rows] == [
            ("WEB-1", "settlement", tokens.ids["desk_a"]), ("CLI-1", "settlement", tokens.ids["desk_b"]),
            ("WEB-1", "reversal", tokens.ids["desk_a"]), ("CLI-1", "adjustment", tokens.ids["desk_a"]),
            ("WEB-2", "settlement", tokens.ids["desk_a"])]
        assert rows[2].reason == "wrong stay entered" and lg.verify().problems == ()
    # and the county's ledger verifies from the command line: the 5 rows above, the chain intact
    rc, out, err = _cli(["ledger", "verify", "--ledger", str(ledger)])
    assert rc == 0 and "5 row(s)" in out and "hash chain intact" in out, out + err


# -- households, claim attributes and a second stage (docs/calculation.md, Rules real schemes need)

#: Key recipients' stays: 80% above 1,000 yuan at a level-1 or level-2 hospital (一级, 二级), 70% at
#: a level-3 one (三级), whose plan has a second stage counting the non-compliant cost (50% of the
#: year's burden above 5,000); both bound by a household cap pool of 10,000 a year.
LEVELS = HEAD.replace('id = "worked"', 'id = "levels"') + '''
[attributes.level]
title = "医院等级"
values = { primary = ["一级"], secondary = ["二级"], tertiary = ["三级"] }
''' + cap_pool("household", "10000", "household") + '''
[[plans]]
name = "lower-levels"
match = { group = ["key"], kind = ["inpatient"], level = ["primary", "secondary"] }
pool = "inpatient"
caps = ["household"]
brackets = [ { from = "1000", rate = "80%" } ]

[[plans]]
name = "tertiary"
match = { group = ["key"], kind = ["inpatient"], level = ["tertiary"] }
pool = "inpatient"
caps = ["household"]
brackets = [ { from = "1000", rate = "70%" } ]

[plans.second]
pool = "burden"
accumulate = "year"
include_non_compliant = true
annual_cap = "20000"
brackets = [ { from = "5000", rate = "50%" } ]
'''

STAY = {"self_pay": "10000", "date": "2024-05-03", "group": "key", "kind": "inpatient", "lang": "en"}


@pytest.fixture
def levels(county, tmp_path):
    """A client of a service under ``LEVELS``, signed in as hospital A's desk."""
    rules = tmp_path / "levels.toml"
    rules.write_text(LEVELS, encoding="utf-8")
    with TestClient(create_app(Settings(str(county[0]), str(rules)))) as c:
        _sign_in(c, county[1].desk_a)
        yield c


def _post(client, **fields: str):
    return client.post("/desk/settle", data={**STAY, **fields, "csrf": _csrf(client.get("/desk").text)})


def _summary(html: str) -> dict[str, str]:
    """The receipt's summary table, label → text (tags dropped)."""
    table = re.search(r'<table id="r-summary">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<th>(.*?)</th><td[^>]*>(.*?)</td>", table, re.S)
    return {k: re.sub(r"<[^>]+>", "", v).strip() for k, v in rows}


def test_the_settle_form_asks_for_the_household_the_non_compliant_cost_and_each_declared_attribute(levels):
    html = levels.get("/desk").text
    assert 'name="household_id"' in html and 'name="non_compliant"' in html
    select = re.search(r'<select id="attr-level" name="attr.level">(.*?)</select>', html, re.S).group(1)
    assert re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select) == [
        ("", "(none)"), ("primary", "一级"), ("secondary", "二级"), ("tertiary", "三级")]
    assert ">医院等级</label>" in html


def test_a_plain_rule_files_page_has_no_household_non_compliant_or_attribute_field(client, county):
    _sign_in(client, county[1].desk_a)
    html = client.get("/desk").text
    assert 'id="settle-form"' in html
    assert "household_id" not in html and "non_compliant" not in html and "<select" not in html


def test_the_hospital_level_chooses_the_rates_and_the_household_cap_binds_the_second_member(levels, county):
    # M, household H1, a level-2 stay: (10,000 − 1,000) × 80% = 7,200.00 (no second stage)
    m = _post(levels, person_id="M", household_id="H1", **{"attr.level": "secondary"}, claim_id="W-M")
    assert m.status_code == 200, m.text
    s = _summary(m.text)
    assert s["Relief"] == "7,200.00" and s["Patient pays"] == "2,800.00"
    assert s["Cap pool household (per household)"] == "7,200.00 counted here of 10,000.00"
    # P, household H2, a level-3 stay (the value given by its Chinese name): 9,000 × 70% = 6,300.00;
    # burden 3,700, below the second stage's 5,000: no second-stage relief
    p = _post(levels, person_id="P", household_id="H2", **{"attr.level": "三级"}, claim_id="W-P")
    s = _summary(p.text)
    assert s["Relief"] == "6,300.00" and s["First-stage relief"] == "6,300.00"
    assert s["Second-stage relief (burden)"] == "0.00" and s["Burden after the first relief"] == "3,700.00"
    # S, M's household member, a level-3 stay with 4,000 non-compliant: 6,300 by the brackets, but 10,000
    # − 7,200 = 2,800 is left of the household's cap; burden 10,000 − 2,800 + 4,000 = 11,200, second stage
    # (11,200 − 5,000) × 50% = 3,100; relief 2,800 + 3,100 = 5,900.00, the patient pays 4,100.00
    s_ = _post(levels, person_id="S", household_id="H1", non_compliant="4,000", **{"attr.level": "tertiary"},
               claim_id="W-S")
    s = _summary(s_.text)
    assert s["First-stage relief"] == "2,800.00  (limited by the cap pool household (per household))"
    assert s["Burden after the first relief"] == "11,200.00"
    assert s["Second-stage relief (burden)"] == "3,100.00"
    assert s["Relief"] == "5,900.00" and s["Patient pays"] == "4,100.00"
    assert s["Cap pool household (per household)"] == "2,800.00 counted here of 10,000.00"
    assert "Second-stage relief (burden)" in re.search(r'id="explanation">(.*?)</section>', s_.text, re.S).group(1)
    with open_ledger(str(county[0]), create=False) as lg:
        assert [(e.claim_id, e.person_id, e.household_id, e.relief) for e in lg.entries()] == [
            ("W-M", "M", "H1", 720000), ("W-P", "P", "H2", 630000), ("W-S", "S", "H1", 590000)]


def test_a_quote_keeps_the_households_attribute_and_non_compliant_cost_in_the_form(levels, county):
    _post(levels, person_id="M", household_id="H1", **{"attr.level": "二级"}, claim_id="W-M")
    q = _post(levels, person_id="S", household_id="H1", non_compliant="4000", **{"attr.level": "三级"},
              claim_id="Q-S", action="quote")
    assert q.status_code == 200 and "Recorded as ledger row" not in q.text
    s = _summary(q.text)
    assert s["Relief"] == "5,900.00" and s["Cap pool household (per household)"] == "10,000.00 used of 10,000.00"
    assert 'id="household_id" name="household_id" value="H1"' in q.text
    assert 'id="non_compliant" name="non_compliant" value="4000"' in q.text
    assert '<option value="tertiary" selected>三级</option>' in q.text
    with open_ledger(str(county[0]), create=False) as lg:
        assert [e.claim_id for e in lg.entries()] == ["W-M"]


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"attr.level": "四级"}, "attr-level", "'四级' is not a value of attribute 'level'"),
    ({"attr.level": "tertiary", "non_compliant": "12.345"}, "non_compliant", "has more than two decimals"),
    ({"attr.level": "tertiary", "household_id": ""}, "household_id", "the claim needs a household id"),
])
def test_a_bad_value_is_shown_next_to_its_field_and_nothing_is_recorded(levels, county, fields, field, message):
    r = _post(levels, person_id="S", claim_id="W-BAD", **fields)
    assert r.status_code == 422, r.text
    assert "Traceback" not in r.text and 'id="problems"' in r.text
    row = unescape(re.search(rf'<div class="row"><label for="{field}">.*?</div>', r.text, re.S).group(0))
    assert 'class="field-problem"' in row and message in row, row
    with open_ledger(str(county[0]), create=False) as lg:
        assert list(lg.entries()) == []


def test_in_a_browser_a_clerk_chooses_the_hospital_level_and_a_household_member_is_capped(browser, county, tmp_path):
    ledger, tokens = county
    rules = tmp_path / "levels.toml"
    rules.write_text(LEVELS, encoding="utf-8")
    with server(str(ledger), log=tmp_path / "serve.log", rules=rules) as srv:
        page = browser.new_page()
        page.goto(f"{srv.url}/desk?lang=en")
        page.fill("#token", tokens.desk_a)
        page.click("#sign-in")
        page.wait_for_selector("#settle-form")

        def settle(person: str, level: str, non_compliant: str = "") -> None:
            form = {"person_id": person, "self_pay": "10,000.00", "date": "2024-05-03", "group": "特困人员",
                    "kind": "住院", "household_id": "H1", "non_compliant": non_compliant}
            for field, value in form.items():
                page.fill(f"#{field}", value)
            page.select_option("#attr-level", label=level)
            page.click("#settle")
            page.wait_for_selector("#receipt")

        settle("M", "二级")  # (10,000 − 1,000) × 80%
        assert page.inner_text("#r-relief").strip() == "7,200.00"
        settle("S", "三级", "4,000")  # 2,800 left of the household's 10,000; second stage (11,200 − 5,000) × 50%
        assert page.inner_text("#r-relief").strip() == "5,900.00" and page.inner_text("#r-pays").strip() == "4,100.00"
        cap = page.inner_text("#r-summary .r-cap")
        assert "household" in cap and "2,800.00 counted here of 10,000.00" in cap
        assert "3,100.00" in page.inner_text("#r-summary")
