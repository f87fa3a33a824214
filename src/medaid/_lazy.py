"""Names a package re-exports from its modules, loaded on first use (PEP 562), so that importing
the package does not import what those modules import (pydantic, polars, pyspark)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``table`` maps a name to the submodule (relative
    to ``package``, e.g. ``"domain.engine"``) that defines it; a name found is kept in the
    package's namespace, so the look-up happens once."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = import_module(package)
        value = getattr(import_module(f".{module}", package), name)
        setattr(mod, name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(import_module(package))) | set(table))

    return __getattr__, __dir__
