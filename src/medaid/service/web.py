"""The clerk's web page, ``/desk``: sign in with a token, settle (or quote) a claim, read the
explanation and print the receipt, look up a person's history, reverse a settlement with a
reason; in Chinese or English.

Server-rendered HTML (Jinja2 templates in ``medaid/service/templates``), one stylesheet inline,
no script and nothing loaded from elsewhere (``Content-Security-Policy: default-src 'none'``).
Rules implemented (docs/service.md#the-clerks-web-page):

* Signing in turns a token into a session (:meth:`medaid.service.tokens.TokenStore.open_session`):
  a cookie ``medaid_session``, ``HttpOnly``, ``SameSite=Strict``, ``Path=/desk`` (``Secure``
  behind HTTPS), stored hashed in the ledger database, so any worker serves it; revoking the
  token ends it.
* Every form is CSRF-protected: a form carries the session's CSRF token (the sign-in form a
  double-submit cookie's), compared in constant time; a missing or wrong one is refused (403)
  with nothing done.
* The operations, permissions and figures are the API's (:class:`medaid.service.operations.Operations`):
  the page shows the same explanation as the desk and a receipt built from the same dict.
* Ids travel in form bodies, never in URLs; pages are ``Cache-Control: no-store``.
* The settle form asks for what the loaded rules use of docs/calculation.md *Rules real schemes
  need* (:func:`desk_fields`), and nothing more: a household id when a cap pool counts per
  household, a non-compliant cost when a second stage counts it, and a choice of the declared
  values of each claim attribute (``attr.NAME``: a code, or empty for none).  The rules under the
  shipped plain rule file ask for none of them.  A problem the API names by field is shown next
  to that field as well as in the list.
"""


import datetime as dt
import secrets
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal, NamedTuple

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from ..domain.rules import RuleBook
from ..errors import MedaidError
from ..ledger.ledger import new_claim_id
from ..money import format_exact_yuan, format_rate, format_yuan
from ..report.explain import LABELS as DESK_LABELS, cap_pool_lines, capped_text, find_plan, second_stage_lines
from .lang import choose
from .models import ClaimIn, HistoryIn, QuoteIn, ReverseIn
from .operations import Operations, forbid
from .problems import ApiProblem, located
from .tokens import Token, TokenStore, same_secret

SESSION_COOKIE = "medaid_session"
SIGNIN_COOKIE = "medaid_signin"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

#: The page's own words (the explanation's are the desk's labels, :data:`medaid.report.explain.LABELS`).
WEB_LABELS: dict[str, tuple[str, str]] = {
    "title": ("Medical aid settlement desk", "医疗救助一站式结算"),
    "sign_in": ("Sign in", "登录"),
    "sign_out": ("Sign out", "退出"),
    "token": ("Desk token", "结算台令牌"),
    "token_help": ("The token your administrator gave this desk (mdt_…).",
                   "管理员为本结算台发放的令牌（mdt_…）。"),
    "signed_in": ("Desk", "结算台"),
    "role": ("Role", "角色"),
    "settle_form": ("Settle a claim", "结算"),
    "settle": ("Settle and record", "结算并记账"),
    "quote": ("Quote only", "仅试算"),
    "person_id": ("Person id", "人员编号"),
    "self_pay": ("Compliant self-pay (yuan)", "合规自付费用（元）"),
    "date": ("Date", "结算日期"),
    "claim_id": ("Claim id (blank: generated)", "结算单号（空白则自动生成）"),
    "group": ("Group", "救助对象类别"),
    "kind": ("Kind", "就诊类型"),
    "total_cost": ("Total medical cost (yuan)", "医疗总费用（元）"),
    "household_id": ("Household id", "户号"),
    "non_compliant": ("Non-compliant cost (yuan)", "非合规费用（元）"),
    "no_value": ("(none)", "（无）"),
    "history_form": ("A person's file (一人一档)", "一人一档查询"),
    "year": ("Benefit year (blank: all)", "救助年度（空白为全部）"),
    "look_up": ("Look up", "查询"),
    "reverse_form": ("Reverse a settlement (冲正)", "冲正"),
    "reason": ("Reason", "冲正原因"),
    "reverse": ("Reverse", "冲正"),
    "receipt": ("Medical aid settlement receipt", "医疗救助结算单"),
    "explanation": ("Explanation", "结算说明"),
    "print": ("Print this page (Ctrl+P): the receipt prints alone.", "打印本页（Ctrl+P）：只打印结算单。"),
    "problems": ("Refused; nothing was recorded", "未办理，未记账"),
    "replayed": ("Settled before with the same content: the original result, nothing recorded.",
                 "此结算单已按相同内容结算过：显示原结果，未重复记账。"),
    "recorded": ("Recorded as ledger row {seq} at {at}.", "已记入台账第 {seq} 行，时间 {at}。"),
    "reversed": ("Reversed claim {claim} (ledger row {seq}).", "已冲正结算单 {claim}（台账第 {seq} 行）。"),
    "later": ("Settled after it in this pool and not recalculated: {ids}", "其后同池结算未重新计算：{ids}"),
    "adjusted": ("Re-settled after the reversal: claim {claim} (row {row}), relief {new}, adjustment {diff}",
                 "冲正后重新结算：结算单 {claim}（第 {row} 行），救助 {new}，调整 {diff}"),
    "adjusts": ("(row {row}, after reversal row {rev})", "（第 {row} 行，因第 {rev} 行冲正）"),
    "no_history": ("No settlements recorded for this person.", "此人无结算记录。"),
    "signed_out": ("Signed out.", "已退出。"),
    "bad_token": ("The token is unknown or revoked.", "令牌无效或已吊销。"),
    "bad_form": ("The form has expired; it was not sent. Please try again.", "表单已过期，未提交，请重试。"),
    "not_allowed": ("This token may not do that.", "此令牌无此权限。"),
    "language": ("中文", "English"),
    "hospital_all": ("(county)", "（全县）"),
}


def web_label(lang: str, key: str) -> str:
    en, zh = WEB_LABELS[key]
    return zh if lang == "zh" else en


def _yuan(text: str | None, none: str = "", sign: int = 1) -> str:
    """An amount of a response (``"23300.00"``) as the desk prints it (``23,300.00``)."""
    if text is None:
        return none
    return format_yuan(sign * int(Decimal(text).scaleb(2)))


def _exact(text: str) -> str:
    """A segment's exact relief of a response (``"1993.8195"``) as the desk prints it (``1,993.8195``)."""
    return format_exact_yuan(Decimal(text).scaleb(2))


def _fen(text: str | None) -> int | None:
    return None if text is None else int(Decimal(text).scaleb(2))


def stage_lines(d: dict[str, Any], book: RuleBook, lang: str) -> dict[str, list[list[str]]]:
    """The receipt's lines for a settlement's or quote's dict ``d`` (the API's) under rules of
    docs/calculation.md *Rules real schemes need*: the second stage (first-stage relief and its
    limit, burden, second-stage relief, the second pool's year to date) and each cap pool's take
    against its annual amount: the explanation's own lines (:func:`medaid.report.explain.second_stage_lines`,
    :func:`medaid.report.explain.cap_pool_lines`); none for a plain plan."""
    r = SimpleNamespace(
        relief=_fen(d["relief"]), second_relief=_fen(d.get("second_relief")), burden=_fen(d.get("burden")),
        second_pool=d.get("second_pool"), second_capped_by=d.get("second_capped_by"),
        ytd_burden=_fen(d.get("ytd_burden")), ytd_second_relief=_fen(d.get("ytd_second_relief")),
        caps=tuple((n, _fen(v)) for n, v in (d.get("caps") or {}).items()) or None,
        caps_after=tuple((c["cap"], _fen(c["used"])) for c in d.get("caps_after") or ()),
        cap_limits=tuple((n, v["per"], _fen(v["annual"])) for n, v in (d.get("cap_limits") or {}).items()))
    rs, _plan = find_plan(book, d["rule_set_id"], d["rule_version"], d["plan"])
    capped = f"  ({capped_text(d['capped_by'], lang, rs)})" if d.get("capped_by") else ""
    return {"second_lines": second_stage_lines(r, capped, lang, rs) if r.second_pool is not None else [],
            "cap_lines": cap_pool_lines(r, rs, lang)}


def _percent(rate: str) -> str:
    return format_rate(Decimal(rate))


_ENV = Environment(loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
                   autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
_ENV.filters["yuan"] = _yuan
_ENV.filters["percent"] = _percent
_ENV.filters["exact"] = _exact


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def _blank(v: str | None) -> str | None:
    return None if v is None or not v.strip() else v


#: The form field of a claim attribute: ``attr.NAME`` (a code of the attribute, or empty).
ATTR_PREFIX = "attr."


class AttributeField(NamedTuple):
    """A claim attribute as the settle form offers it: its name, title and values (code, names)."""

    name: str
    title: str
    values: tuple[tuple[str, tuple[str, ...]], ...]


class DeskFields(NamedTuple):
    """Which of the claim fields of docs/calculation.md *Rules real schemes need* the settle form asks for."""

    household: bool
    non_compliant: bool
    attributes: tuple[AttributeField, ...]


def desk_fields(book: RuleBook) -> DeskFields:
    """What the versions of the served scheme use: a household id when a cap pool counts per
    household (docs/rules.md, *Cap pools*), a non-compliant cost when a plan's second stage sets
    ``include_non_compliant``, and each declared attribute (the first declaration's title, the
    values of every version, codes in the order first declared)."""
    try:
        versions = book.versions()
    except MedaidError:  # several schemes and none chosen: the service refuses to settle anyway
        versions = ()
    attrs: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {}
    for rs in versions:
        for name, a in rs.attributes.items():
            title, values = attrs.setdefault(name, (a.title or name, {}))
            for code, names in a.values.items():
                values[code] = tuple(dict.fromkeys((*values.get(code, ()), *names)))
    return DeskFields(
        household=any(c.per == "household" for rs in versions for c in rs.caps.values()),
        non_compliant=any(p.second is not None and p.second.include_non_compliant
                          for rs in versions for p in rs.plans),
        attributes=tuple(AttributeField(n, t, tuple(v.items())) for n, (t, v) in attrs.items()))


async def _attribute_form(request: Request) -> dict[str, str]:
    """The settle form's attribute choices, ``attr.NAME`` → value; an empty choice is none."""
    form = await request.form()
    return {k.removeprefix(ATTR_PREFIX): v for k, v in form.multi_items()
            if k.startswith(ATTR_PREFIX) and isinstance(v, str) and v.strip()}


def web_router(ops: Operations) -> APIRouter:
    r = APIRouter(prefix="/desk", include_in_schema=False)

    def page(request: Request, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("who", None)
        problems = ctx.get("problems") or ()
        html = _ENV.get_template("desk.html").render(
            fields=desk_fields(ops.book), field_problems=_by_field(problems),
            lang=lang, other="en" if lang == "zh" else "zh", t=lambda k: web_label(lang, k),
            L=DESK_LABELS[lang], capped=lambda by: capped_text(by, lang),
            new_claim_id=new_claim_id(dt.date.today()), **ctx)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def signin_page(request: Request, lang: str, status: int = 200, message: str | None = None) -> HTMLResponse:
        nonce = secrets.token_urlsafe(24)
        resp = page(request, lang, status, signin=nonce, message=message)
        resp.set_cookie(SIGNIN_COOKIE, nonce, httponly=True, samesite="strict", path="/desk",
                        secure=_secure(request), max_age=3600)
        return resp

    def session(request: Request) -> tuple[Token, str] | None:
        secret = request.cookies.get(SESSION_COOKIE)
        return None if not secret else TokenStore(ops.ledger()).session(secret)

    def signed_in(request: Request, csrf: str | None) -> tuple[Token, str]:
        """The session's token and CSRF token; a form without the session's CSRF token is refused."""
        found = session(request)
        if found is None:
            raise _SignIn()
        if csrf is None or not same_secret(csrf, found[1]):
            raise _BadForm(found)
        return found

    def run(request: Request, lang: str, csrf: str | None, action: str, work: Any,
            form: dict[str, Any] | None = None) -> Response:
        """Do ``work`` for the session's token if its role may do ``action``; the page shows
        its result, or the problems with ``form`` as it was sent."""
        try:
            who, token_csrf = signed_in(request, csrf)
        except _SignIn:
            return signin_page(request, lang, 401)
        except _BadForm as e:
            return page(request, lang, 403, who=e.found[0], csrf=e.found[1], message=web_label(lang, "bad_form"))
        ctx: dict[str, Any] = {"who": who, "csrf": token_csrf, "form": form}
        try:
            if not who.may(action):
                raise forbid(action, who)
            ctx.update(work(who))
        except ValidationError as e:
            return page(request, lang, 422, problems=[located(err) for err in e.errors()], **ctx)
        except ApiProblem as p:
            return page(request, lang, p.status, problems=list(p.problems), **ctx)
        return page(request, lang, **ctx)

    @r.get("", response_class=HTMLResponse)
    def desk(request: Request) -> Response:
        lang = choose(request, request.query_params.get("lang"))
        found = session(request)
        if found is None:
            return signin_page(request, lang)
        return page(request, lang, who=found[0], csrf=found[1])

    @r.post("/sign-in")
    def sign_in(request: Request, token: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                lang: Annotated[str, Form()] = "") -> Response:
        lang = choose(request, lang)
        nonce = request.cookies.get(SIGNIN_COOKIE, "")
        if not nonce or not same_secret(csrf, nonce):
            return signin_page(request, lang, 403, web_label(lang, "bad_form"))
        store = TokenStore(ops.ledger())
        found = store.authenticate(token.strip())
        if found is None:
            return signin_page(request, lang, 401, web_label(lang, "bad_token"))
        secret, _csrf = store.open_session(found)
        resp = RedirectResponse(f"/desk?lang={lang}", status_code=303, headers=HEADERS)
        resp.set_cookie(SESSION_COOKIE, secret, httponly=True, samesite="strict", path="/desk",
                        secure=_secure(request))
        resp.delete_cookie(SIGNIN_COOKIE, path="/desk")
        return resp

    @r.post("/sign-out")
    def sign_out(request: Request, csrf: Annotated[str, Form()] = "", lang: Annotated[str, Form()] = "") -> Response:
        lang = choose(request, lang)
        found = session(request)
        if found is not None and same_secret(csrf, found[1]):
            TokenStore(ops.ledger()).close_session(request.cookies.get(SESSION_COOKIE, ""))
        resp = signin_page(request, lang, message=web_label(lang, "signed_out"))
        resp.delete_cookie(SESSION_COOKIE, path="/desk")
        return resp

    @r.post("/settle")
    def settle(request: Request, attributes: Annotated[dict[str, str], Depends(_attribute_form)],
               person_id: Annotated[str, Form()] = "", self_pay: Annotated[str, Form()] = "",
               date: Annotated[str, Form()] = "", claim_id: Annotated[str, Form()] = "",
               group: Annotated[str, Form()] = "", kind: Annotated[str, Form()] = "",
               total_cost: Annotated[str, Form()] = "", household_id: Annotated[str, Form()] = "",
               non_compliant: Annotated[str, Form()] = "",
               action: Annotated[Literal["settle", "quote"], Form()] = "settle",  # (else refused: 422)
               csrf: Annotated[str, Form()] = "", lang: Annotated[str, Form()] = "") -> Response:
        lang = choose(request, lang)
        fields = {"person_id": person_id, "self_pay": self_pay, "date": _blank(date), "claim_id": _blank(claim_id),
                  "group": _blank(group), "kind": _blank(kind), "total_cost": _blank(total_cost),
                  "household_id": _blank(household_id), "non_compliant": _blank(non_compliant),
                  "attributes": attributes or None}
        quoting = action == "quote"

        def work(who: Token) -> dict[str, Any]:
            form = {k: v for k, v in fields.items() if v is not None}
            if quoting:  # the same form again, its claim id too: "settle" then settles what was quoted
                d = ops.quote(who, QuoteIn.model_validate(form), lang)
                left = None if d["annual_cap"] is None else max(Decimal(d["annual_cap"]) - Decimal(d["ytd_relief"]), 0)
                return {"result": {**d, "annual_cap_left": None if left is None else str(left),
                                   **stage_lines(d, ops.book, lang)}, "form": fields}
            d = ops.settle(who, ClaimIn.model_validate(form), lang)
            return {"result": {**d, **stage_lines(d, ops.book, lang)}, "form": None}  # a fresh form

        return run(request, lang, csrf, "quote" if quoting else "settle", work, fields)

    @r.post("/history")
    def history(request: Request, person_id: Annotated[str, Form()] = "", year: Annotated[str, Form()] = "",
                csrf: Annotated[str, Form()] = "", lang: Annotated[str, Form()] = "") -> Response:
        lang = choose(request, lang)

        def work(who: Token) -> dict[str, Any]:
            y = _blank(year)
            body = HistoryIn.model_validate({"person_id": person_id, "year": None if y is None else _year(y)})
            rows, d = ops.history(body)
            reversed_ = {e.reverses for e in rows if e.reverses is not None}
            return {"history": d, "reversible": {e.seq for e in rows if e.entry == "settlement"
                                                 and e.seq not in reversed_}}

        return run(request, lang, csrf, "history", work)

    @r.post("/reverse")
    def reverse(request: Request, claim_id: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                csrf: Annotated[str, Form()] = "", lang: Annotated[str, Form()] = "") -> Response:
        lang = choose(request, lang)
        return run(request, lang, csrf, "reverse", lambda who: {
            "reversal": ops.reverse(who, ReverseIn.model_validate({"claim_id": claim_id, "reason": reason}))})

    return r


def _by_field(problems: Any) -> dict[str, list[str]]:
    """The problems' messages by the form field they name (``attributes.level`` → ``attr.level``;
    an attribute's value refused by the rules names the attribute alone), for the page to show
    next to that field."""
    out: dict[str, list[str]] = {}
    for p in problems:
        field = getattr(p, "field", None)
        if field:
            out.setdefault(field.replace("attributes.", ATTR_PREFIX, 1), []).append(p.message)
    return out


def _year(text: str) -> int | str:
    text = text.strip()
    return int(text) if text.isdigit() and len(text) <= 4 else text


class _SignIn(Exception):
    """No session: sign in first."""


class _BadForm(Exception):
    """A form without the session's CSRF token."""

    def __init__(self, found: tuple[Token, str]) -> None:
        self.found = found
