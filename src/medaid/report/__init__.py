"""What people read: the year-end report and the monthly review (:mod:`.indicators` computes
them from a results file or the ledger, :mod:`.targets` reads the year's plan and
:mod:`.evaluation` compares the figures with it, :mod:`.text` prints them as text or JSON,
:mod:`.html` draws the HTML page), the desk
explanation of one result (:mod:`.explain`), the one totals engine (:mod:`.totals`) and the one
table of English and Chinese labels (:mod:`.labels`).

The names of :data:`_LAZY` load on first use (PEP 562), so importing the package stays light.
"""

from typing import Final

from .._lazy import lazy_exports as _lazy_exports

#: The groupings of the report's breakdown table (``medaid report --by``); defined here, not in
#: :mod:`.indicators`, so that the command can offer them without importing polars.
BY_CHOICES: Final = ("month", "plan", "hospital", "group", "kind")

_LAZY = {
    "Figure": "indicators",
    "REPORT_FIELDS": "indicators",
    "Report": "indicators",
    "Table": "indicators",
    "Targets": "targets",
    "TargetsError": "targets",
    "evaluate": "evaluation",
    "load_targets": "targets",
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
__all__ = sorted([*_LAZY, "BY_CHOICES"])
