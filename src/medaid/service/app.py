"""The county settlement service: a FastAPI application over the ledger database.

:func:`create_app` builds it from :class:`medaid.service.store.Settings` (the environment,
when uvicorn's workers call it): the rule book is loaded once per process, the ledger is opened
per request thread, and nothing else is kept between requests (docs/service.md).  The JSON API
is under ``/v1`` (documented by ``/openapi.json``, to a token), the clerk's web page under
``/desk`` (:mod:`medaid.service.web`).  Every refusal is problem+json
(:mod:`medaid.service.problems`); an unexpected error is named by its kind only, in the
response and in the log (no message, which may hold personal data).
"""


import json
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import Problem
from ..tuning import frozen_heap
from . import models as m
from .lang import accepted_language, language
from .logs import masked
from .operations import Caller, Operations
from .problems import KINDS, MEDIA_TYPE, ApiProblem, located
from .store import Ledgers, Settings

log = logging.getLogger("medaid.service")

def problem_response(p: ApiProblem) -> JSONResponse:
    return JSONResponse(p.body(), status_code=p.status, media_type=MEDIA_TYPE, headers=p.headers)


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of the problem responses a route may give."""
    titles: dict[int, str] = {}
    for status, title, _code in KINDS.values():
        titles.setdefault(status, title)
    return {s: {"description": titles.get(s, "Problem"),
                "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemOut"}}}}
            for s in statuses}


_AUTH = (401, 403)
#: The permissions of a period's steps (:data:`medaid.service.tokens.PERMISSIONS`).
RUN_PERIOD, REVIEW_PERIOD = "open, close, approve or pay a period", "review a period"
_INVALID = (400, 422)


def api_router(ops: Operations) -> APIRouter:
    bearer = HTTPBearer(auto_error=False, description="A token from `medaid tokens add` (mdt_…).")

    def who(action: str) -> Callable[..., Awaitable[Caller]]:
        """The route's caller: refused at once without a token.  Looking the token up is left to
        the route's own thread (:meth:`Operations.authenticate`), so that a request crosses to a
        thread once, not twice; the caller is kept on the request, for a request that is also
        invalid is refused for its token first (:func:`create_app`'s ``_invalid``)."""
        async def dependency(request: Request,
                             creds: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> Caller:
            caller = ops.caller(None if creds is None else creds.credentials, action)
            request.state.caller = caller
            return caller
        return dependency

    Lang = Annotated[str, Depends(language)]
    r = APIRouter(prefix="/v1")

    @r.get("/health", response_model=m.HealthOut, tags=["service"],
           summary="Health: the ledger database answers (no token needed)", responses=_problems(503))
    def health() -> Any:
        return JSONResponse({"status": "ok", "version": __version__,
                             "schema_version": ops.ledger().schema_version()})

    @r.post("/settle", response_model=m.SettlementOut, status_code=201, tags=["desk"],
            summary="Settle a claim and record it (idempotent on claim id)",
            responses={200: {"model": m.SettlementOut,
                             "description": "The claim id was settled before with the same content: the "
                                            "original result; nothing recorded"},
                       **_problems(*_AUTH, 404, 409, *_INVALID, 503)})
    def settle(body: m.ClaimIn, caller: Annotated[Caller, Depends(who("settle"))], lang: Lang) -> Any:
        return settled(ops.settle_as(caller.secret, body, lang))

    @r.post("/quote", response_model=m.QuoteOut, tags=["desk"],
            summary="What a claim would get now; nothing recorded",
            responses=_problems(*_AUTH, 409, *_INVALID, 503))
    def quote(body: m.QuoteIn, caller: Annotated[Caller, Depends(who("quote"))], lang: Lang) -> Any:
        return JSONResponse(ops.quote(ops.authenticate(*caller), body, lang))

    @r.post("/reverse", response_model=m.ReversalOut, status_code=201, tags=["desk"],
            summary="Reverse (冲正) a settlement", responses=_problems(*_AUTH, 404, 409, *_INVALID, 503))
    def reverse(body: m.ReverseIn, caller: Annotated[Caller, Depends(who("reverse"))]) -> Any:
        return JSONResponse(ops.reverse(ops.authenticate(*caller), body), status_code=201)

    @r.post("/history", response_model=m.HistoryOut, tags=["desk"],
            summary="A person's file (一人一档): settlements, reversals, each pool's year to date",
            responses=_problems(*_AUTH, 409, *_INVALID, 503))
    def history(body: m.HistoryIn, caller: Annotated[Caller, Depends(who("history"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse(ops.history(body)[1])

    @r.get("/rules", response_model=m.RulesOut, tags=["rules"],
           summary="The rule sets and plans the service settles under", responses=_problems(*_AUTH))
    def rules(caller: Annotated[Caller, Depends(who("rules"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse(ops.rules())

    @r.get("/ledger/verify", response_model=m.VerifyOut, tags=["admin"],
           summary="Verify the ledger: hash chain, links, year-to-date figures, caps (admin)",
           responses=_problems(*_AUTH, 503))
    def verify(caller: Annotated[Caller, Depends(who("verify"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse(ops.verify())

    # -- the monthly periods (docs/periods.md) ------------------------------------------------
    Month = Annotated[str, Path(description="The period: a month, YYYY-MM.", examples=["2024-05"])]

    @r.get("/periods", response_model=list[m.PeriodSummaryOut], tags=["periods"],
           summary="The periods opened: state and last transition (reviewer, admin)", responses=_problems(*_AUTH, 503))
    def periods(caller: Annotated[Caller, Depends(who("periods"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse(ops.periods())

    @r.get("/periods/{period}", response_model=m.PeriodOut, tags=["periods"],
           summary="A period: state, transitions, totals per channel and hospital, review outcomes (reviewer, admin)",
           responses=_problems(*_AUTH, 422, 503))
    def period_show(period: Month, caller: Annotated[Caller, Depends(who("periods"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse(ops.period_show(period))

    def period_step(action: str, summary: str) -> None:
        def step(period: Month, caller: Annotated[Caller, Depends(who(RUN_PERIOD))]) -> Any:
            return JSONResponse(ops.period_step(ops.authenticate(*caller), action, period), status_code=201)

        r.add_api_route(f"/periods/{{period}}/{action}", step, methods=["POST"], response_model=m.EventOut,
                        status_code=201, tags=["periods"], summary=summary, name=f"period_{action}",
                        responses=_problems(*_AUTH, 409, 422, 503))

    period_step("open", "Open a period (admin)")
    period_step("close", "Declare an open period: its rows are fixed (admin)")
    period_step("approve", "Approve a reviewed period (admin)")
    period_step("pay", "Record an approved period as paid (admin)")

    @r.post("/periods/{period}/review", response_model=m.ReviewOut, status_code=201, tags=["periods"],
            summary="Review a declared period: reject claims (each reversed), approve the rest (reviewer)",
            responses=_problems(*_AUTH, 409, *_INVALID, 503))
    def period_review(period: Month, body: m.ReviewIn,
                      caller: Annotated[Caller, Depends(who(REVIEW_PERIOD))]) -> Any:
        return JSONResponse(ops.period_review(ops.authenticate(*caller), period, body), status_code=201)

    @r.get("/tokens", response_model=list[m.TokenOut], tags=["admin"], summary="The tokens (admin)",
           responses=_problems(*_AUTH))
    def tokens(caller: Annotated[Caller, Depends(who("tokens"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse([t.to_dict() for t in ops.tokens().list()])

    @r.post("/tokens", response_model=m.NewTokenOut, status_code=201, tags=["admin"],
            summary="Add a token; its secret is in this response only (admin)",
            responses=_problems(*_AUTH, *_INVALID))
    def add_token(body: m.TokenIn, caller: Annotated[Caller, Depends(who("tokens"))]) -> Any:
        ops.authenticate(*caller)
        new, secret = ops.add_token(body.role, body.hospital)
        return JSONResponse({**new.to_dict(), "token": secret}, status_code=201)

    @r.post("/tokens/{token_id}/revoke", response_model=m.TokenOut, tags=["admin"],
            summary="Revoke a token (admin)", responses=_problems(*_AUTH, 404, 409))
    def revoke_token(token_id: str, caller: Annotated[Caller, Depends(who("tokens"))]) -> Any:
        ops.authenticate(*caller)
        return JSONResponse(ops.revoke_token(token_id).to_dict())

    return r


def settled(d: dict[str, Any]) -> JSONResponse:
    """A settlement's response: 201, or 200 for one replayed."""
    return JSONResponse(d, status_code=200 if d["replayed"] else 201)


class FastSettle:
    """ASGI middleware: a well-formed ``POST /v1/settle`` answered without FastAPI's machinery
    for one request (its dependencies, its body field, its response handling), which cost
    about as much CPU as the settlement's own work (docs/service.md#capacity).

    Well-formed: a bearer token (``Authorization`` as FastAPI's ``HTTPBearer`` reads it), no
    query but ``lang=en`` or ``lang=zh``, an ``application/json`` body holding an object that
    :class:`medaid.service.models.ClaimIn` accepts.  Such a request gets what the route would
    give it: the same call (:meth:`Operations.settle_as`) on a worker thread, the same response
    and the same problems.  Any other request to the path goes on to the route itself, with its
    body as read: every refusal of a malformed request is the route's own, and the OpenAPI
    document is the route's."""

    def __init__(self, app: Any, ops: Operations) -> None:
        self.app = app
        self.ops = ops

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/settle" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of a repeated header, as Starlette reads it
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        request = self._read(scope, headers, messages)
        if request is None:
            await self.app(scope, _replaying(messages, receive), send)
            return
        secret, body, lang = request
        try:
            response = settled(await run_in_threadpool(self.ops.settle_as, secret, body, lang))
        except ApiProblem as p:
            response = problem_response(p)
        await response(scope, receive, send)

    @staticmethod
    def _read(scope: Any, headers: dict[bytes, bytes], messages: list[Any]) -> tuple[str, m.ClaimIn, str] | None:
        """The token, claim and language of a well-formed request, else ``None``."""
        from fastapi.security.utils import get_authorization_scheme_param

        if messages[-1]["type"] != "http.request":
            return None
        query = scope.get("query_string", b"")
        lang = {b"": None, b"lang=en": "en", b"lang=zh": "zh"}.get(query, "?")
        media = headers.get(b"content-type", b"").partition(b";")[0].strip().lower()
        if lang == "?" or media != b"application/json":
            return None
        scheme, secret = get_authorization_scheme_param(headers.get(b"authorization", b"").decode("latin-1"))
        if scheme.lower() != "bearer" or not secret:
            return None
        try:
            data = json.loads(b"".join(message.get("body", b"") for message in messages))
            if not isinstance(data, dict):
                return None
            body = m.ClaimIn.model_validate(data)
        except Exception:  # noqa: BLE001 - not JSON, not a claim, or worse: the route says what
            return None
        return secret, body, lang or accepted_language(headers.get(b"accept-language", b"").decode("latin-1"))


def _replaying(messages: list[Any], receive: Any) -> Callable[[], Awaitable[Any]]:
    """An ASGI ``receive`` that gives ``messages`` again, then whatever ``receive`` gives."""
    pending = list(messages)

    async def replay() -> Any:
        return pending.pop(0) if pending else await receive()
    return replay


class Internal:
    """ASGI middleware: an unexpected error becomes a 500 problem naming its kind; the log gets
    the kind, the method, the path (IDs masked) and the frames, never the error's text."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:  # noqa: BLE001 - the last resort: never a traceback or data to a client
            log.error("internal error (%s) in %s %s\n%s", type(e).__name__, scope.get("method"),
                      masked(scope.get("path", "")), "".join(traceback.format_tb(e.__traceback__)))
            if started:
                return
            p = ApiProblem("internal", Problem(
                f"internal error ({type(e).__name__}); nothing more was done. This is a defect of medaid: "
                "please report it with the time of the request"))
            await problem_response(p)(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment, as ``medaid serve`` sets it).
    Loads the rules (refused: :class:`medaid.errors.RuleError`) and opens the ledger once
    (applying its migrations) before serving."""
    from ..domain.rules import load_rules

    settings = settings or Settings.from_env()
    book = load_rules(settings.rules, settings.scheme)
    book.versions()  # several schemes and none chosen: refused now, not at the first claim
    ledgers = Ledgers(settings.ledger)
    ops = Operations(book, ledgers)
    ledgers.get()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with frozen_heap():  # what the process keeps for its life, out of the collector's passes
            yield
        ledgers.close()

    app = FastAPI(
        lifespan=lifespan,
        title="medaid county settlement service",
        version=__version__,
        description=(
            "One-stop settlement of medical aid (医疗救助) for every hospital of a county against one "
            "ledger: settle, quote, reverse, a person's history, the rules. Money is text: yuan as "
            "strings (\"23300.00\"), never JSON numbers. Errors are application/problem+json with the "
            "located problems. Labels in English or Chinese (?lang=zh or Accept-Language)."),
        # the document is served below, to a token like every route but the health check
        openapi_url=None, docs_url=None, redoc_url=None,
    )
    app.state.ops = ops

    @app.exception_handler(ApiProblem)
    async def _api_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        caller = getattr(request.state, "caller", None)
        if caller is not None:  # an unknown, revoked or unentitled token is refused before the request's problems
            try:
                await run_in_threadpool(ops.authenticate, *caller)
            except ApiProblem as p:
                return problem_response(p)
        return problem_response(ApiProblem("invalid-request", [located(err) for err in exc.errors()]))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {400: "bad-request", 404: "not-found", 405: "method-not-allowed",
                415: "unsupported-media-type"}.get(exc.status_code, "invalid-request")
        p = ApiProblem(kind, Problem(str(exc.detail)), status=exc.status_code, headers=dict(exc.headers or {}))
        return problem_response(p)

    app.include_router(api_router(ops))
    from .web import web_router

    app.include_router(web_router(ops))
    app.add_middleware(FastSettle, ops=ops)
    app.add_middleware(Internal)  # added last: the outer, it also catches what FastSettle raises

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            problem = m.ProblemOut.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["ProblemOut"] = problem
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(
        creds: Annotated[HTTPAuthorizationCredentials | None, Security(HTTPBearer(auto_error=False))],
    ) -> Any:
        """The OpenAPI document, to any active token (each role may read the rules): 401
        without one, as every route but ``/v1/health``."""
        ops.authenticate(None if creds is None else creds.credentials, "rules")
        return JSONResponse(openapi())

    return app
