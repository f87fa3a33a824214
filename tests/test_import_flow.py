"""The layout tells the flow (README "Module layout"): rules → claims → engine → ledger/batch →
reports → CLI/service.  A module imports only from its own layer or the layers below it, so each
layer can be read, tested and replaced without the ones above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "medaid"

#: Each top-level part of the package and its layer; a module may import its layer or lower.
LAYER = {
    "errors": 0, "money": 0, "_lazy": 0, "tuning": 0,
    "domain": 1,
    "io": 2,
    "ledger": 3, "batch": 3,
    "report": 4,
    "spark": 5, "service": 5,
    "cli": 6,
}


def _part(module: str) -> str:
    """``medaid.report.totals`` → ``report``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported(text: str, module: str) -> list[tuple[int, str]]:
    """``(line, medaid.x.y)`` for every medaid module the text of ``module`` imports."""
    package = module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            if name == "medaid":  # from medaid import x / from .. import x
                out += [(node.lineno, f"medaid.{a.name}") for a in node.names]
            elif name.startswith("medaid."):
                out.append((node.lineno, name))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("medaid.")]
    return out


def upward(text: str, module: str) -> list[str]:
    """The imports of ``module`` that reach a layer above its own."""
    own = LAYER[_part(module)]
    return [f"line {line}: imports {name}" for line, name in imported(text, module)
            if _part(name) in LAYER and LAYER[_part(name)] > own]


def _module(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) if len(parts) > 2 else ".".join(parts)


MODULES = [p for p in sorted(SRC.rglob("*.py")) if p != SRC / "__init__.py"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_a_module_imports_nothing_above_its_layer(path: Path) -> None:
    name = _module(path) if path.name != "__init__.py" else _module(path) + ".__init__"
    assert _part(name) in LAYER, f"{path}: give its part a layer here and a row in README's layout"
    assert upward(path.read_text(encoding="utf-8"), name) == [], path


def test_an_upward_import_is_seen_however_it_is_written() -> None:
    # the rule can fail: the engine importing the report, relatively or absolutely
    assert upward("from ..report.totals import summarise\n", "medaid.domain.engine") == [
        "line 1: imports medaid.report.totals"]
    assert upward("import medaid.cli.app\n", "medaid.io.readers") == ["line 1: imports medaid.cli.app"]
    assert upward("from .. import report\n", "medaid.batch.run") == ["line 1: imports medaid.report"]
    assert upward("from ..io import results\nfrom .labels import x\n", "medaid.report.text") == []
