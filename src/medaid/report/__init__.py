"""The budget report: :mod:`.indicators` computes it from a results file or the ledger,
:mod:`.text` prints it (text, JSON), :mod:`.html` draws the HTML page, :mod:`.labels` names things.

The names below load on first use (PEP 562), so importing the package stays light.
"""

from .._lazy import lazy_exports as _lazy_exports

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


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY)
__all__ = sorted(_LAZY)
