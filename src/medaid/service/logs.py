"""The service's logs hold no personal ID numbers (docs/service.md#logs).

The API and the web page carry ids only in request bodies, never in paths or query strings, and
the service logs no bodies; uvicorn's access log shows the method, path and status.  As a second
guard, :class:`MaskIds` rewrites every access-log line and :func:`masked` every path the
service logs: a query string keeps its keys and ``lang`` but loses its values, and a run of
nine digits or more (an ID number, a bank account, perhaps parted by spaces or hyphens, a
final ``X`` included) in the percent-decoded path is replaced by ``***``.  :func:`log_config`
is uvicorn's logging configuration with the filter in place.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote

#: Nine digits or more, perhaps parted by single spaces or hyphens (an ID number
#: ``500101-19800101-1234``, a bank account of up to 30 digits), a final ``X`` included: the
#: whole run is masked.  (A date, ``2024-05-03``, has eight.)
_ID_RUN = re.compile(r"(?:[0-9][ -]?){8,}[0-9Xx]")
_KEEP = frozenset({"lang"})


def masked(target: str) -> str:
    """A request target (path and query) as it may be logged; its path percent-decoded first
    (``%35%30…`` is ``50…``, masked as the digits it is)."""
    path, sep, query = target.partition("?")
    path = masked_text(unquote(path, errors="replace"))
    if not sep:
        return path
    kept = []
    for pair in query.split("&"):
        key, eq, value = pair.partition("=")
        key = masked_text(key)
        if not eq:
            kept.append(key)
        elif key in _KEEP and value == masked_text(value):
            kept.append(f"{key}={value}")
        else:
            kept.append(f"{key}=…")
    return path + "?" + "&".join(kept)


def masked_text(text: str) -> str:
    """Any text with runs of nine digits or more (an ID number, a bank account; spaces or
    hyphens between them too) replaced by ``***``."""
    return _ID_RUN.sub("***", text)


class MaskIds(logging.Filter):
    """A logging filter for uvicorn's logs: an access-log record's target (its third argument,
    after the client and the method) is :func:`masked`; any other record's message has its
    ID numbers and bank accounts replaced (:func:`masked_text`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) >= 3:
            record.args = (*args[:2], masked(str(args[2])), *args[3:])
        else:
            message = record.getMessage()
            shown = masked_text(message)
            if shown != message:
                record.msg, record.args = shown, None
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration, its access log filtered by :class:`MaskIds`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["mask_ids"] = {"()": f"{__name__}.MaskIds"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("mask_ids")
    config["loggers"]["medaid"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
