"""The language of labels and explanations: ``?lang=en|zh`` (a form's ``lang``), else the
preferred of English and Chinese in the request's ``Accept-Language``, else English
(docs/service.md#languages)."""


from typing import Annotated, Literal

from fastapi import Query, Request

LANGS = ("en", "zh")


_LANG_QUERY = Query(description="Language of the labels and explanation; else the Accept-Language header, else en.")


async def language(request: Request, lang: Annotated[Literal["en", "zh"] | None, _LANG_QUERY] = None) -> str:
    """The API's ``?lang=`` dependency: :func:`choose` (a coroutine, so that FastAPI runs it
    on the event loop rather than sending it to a thread and back: about 0.6 ms of CPU less per
    request, measured with benchmarks/bench_service.py)."""
    return choose(request, lang)


def choose(request: Request, lang: str | None) -> str:
    """``lang`` if it is en or zh, else the first of en/zh in ``Accept-Language`` by preference,
    else ``en``."""
    return lang if lang in LANGS else accepted_language(request.headers.get("accept-language", ""))


def accepted_language(header: str) -> str:
    """The preferred of en and zh in an ``Accept-Language`` header (``en`` if neither)."""
    best, best_q = "en", -1.0
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q > best_q:
            best, best_q = primary, q
    return best
