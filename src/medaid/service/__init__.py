"""The county settlement service (docs/service.md): one ledger database for every hospital of a
county, an HTTP API under ``/v1`` (FastAPI, documented by ``/openapi.json``), a clerk's web
page at ``/desk`` and bearer tokens per desk; ``medaid serve`` runs it on uvicorn.

Thin over the library, as :mod:`medaid.cli` is: :mod:`.operations` calls the ledger and the
desk's explanation; :mod:`.app` is the JSON API, :mod:`.web` the web page, :mod:`.models` the
request and response JSON, :mod:`.problems` the errors (problem+json), :mod:`.tokens` who may
do what, :mod:`.store` where the state is, :mod:`.logs` what the logs may show.  Needs the
``service`` extra (fastapi, uvicorn, jinja2, python-multipart; httpx for the tests); the
tokens store and the settings need only the standard library.  ``import medaid`` never
imports this package.
"""
