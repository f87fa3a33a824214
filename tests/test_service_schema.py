"""Schemathesis against the service's own /openapi.json: generated requests, fitting the schema
and not, to every operation never get a 5xx, and every response has a documented status, its
documented content type and matches its documented schema, on an SQLite file and on PostgreSQL
(a fresh schema in the session's throwaway cluster, tests/conftest.py).  Bounded: a few dozen
examples an operation and mode (well under a minute a backend)."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("fastapi", reason="the service needs the service extra: pip install 'medaid[service]'")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402

from medaid.service.app import create_app  # noqa: E402
from medaid.service.store import Settings  # noqa: E402

try:
    from conftest import BACKENDS, ledger_db
    from service_support import RULES, make_tokens
except ImportError:  # pragma: no cover - tests collected as a package
    from tests.conftest import BACKENDS, ledger_db
    from tests.service_support import RULES, make_tokens

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 40


@pytest.fixture(scope="module", params=BACKENDS)
def api(request, tmp_path_factory):
    """The service's schema, served in-process over a ledger on each backend in turn."""
    with ledger_db(request, request.param, tmp_path_factory.mktemp("schema")) as ledger:
        tokens = make_tokens(ledger)
        app = create_app(Settings(str(ledger), str(RULES)))
        try:
            yield schemathesis.openapi.from_asgi("/openapi.json", app,
                                                 headers={"Authorization": f"Bearer {tokens.admin}"}), tokens
        finally:
            app.state.ops.ledgers.close()  # (its PostgreSQL pool), before the schema is dropped


def _operations(schema) -> list:
    return [r.ok() for r in schema.get_all_operations()]


def test_the_document_lists_every_operation(api):
    schema, _ = api
    assert {f"{op.method.upper()} {op.path}" for op in _operations(schema)} == {
        "GET /v1/health", "POST /v1/settle", "POST /v1/quote", "POST /v1/reverse", "POST /v1/history",
        "GET /v1/rules", "GET /v1/ledger/verify", "GET /v1/tokens", "POST /v1/tokens",
        "POST /v1/tokens/{token_id}/revoke", "GET /v1/periods", "GET /v1/periods/{period}",
        *(f"POST /v1/periods/{{period}}/{step}" for step in ("open", "close", "review", "approve", "pay"))}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("role", ["admin", "desk_a"])
def test_every_response_is_documented_and_none_is_a_server_error(api, mode, role):
    schema, tokens = api
    headers = {"Authorization": f"Bearer {getattr(tokens, role)}"}
    for op in _operations(schema):
        if mode is GenerationMode.NEGATIVE and not any(len(x) for x in (op.body, op.query, op.path_parameters)):
            continue  # nothing to get wrong
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
