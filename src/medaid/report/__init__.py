"""The budget report: :mod:`.indicators` computes it from a results file or the ledger,
:mod:`.text` prints it (text, JSON), :mod:`.html` draws the HTML page, :mod:`.labels` names things.

The names below load on first use (PEP 562), so importing the package stays light.
"""

from typing import Any as _Any

_LAZY = {
    "BY_CHOICES": "indicators",
    "Figure": "indicators",
    "REPORT_FIELDS": "indicators",
    "Report": "indicators",
    "Table": "indicators",
    "avg_fen": "indicators",
    "budget_warning": "indicators",
    "build": "indicators",
    "cell_text": "indicators",
    "compute": "indicators",
    "figure_label": "indicators",
    "figure_text": "indicators",
    "load_ledger_results": "indicators",
    "load_results": "indicators",
    "percent_text": "indicators",
    "render_json": "text",
    "render_text": "text",
    "render_html": "html",
    "write_html": "html",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = sorted(_LAZY)
