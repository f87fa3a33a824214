"""The package layout (README "Module layout"): the names the docs use resolve, the old flat
modules are gone, and importing a package does not drag in the heavy libraries."""

import importlib
import subprocess
import sys

import pytest

HEAVY = ("polars", "openpyxl", "pyspark", "pyarrow")

#: Public names and the module that defines each (the re-export must be that very object).
REEXPORTS = [
    ("medaid.ledger", "Ledger", "medaid.ledger.ledger"),
    ("medaid.ledger", "LedgerConflict", "medaid.ledger.ledger"),
    ("medaid.ledger", "MIGRATIONS", "medaid.ledger.ledger"),
    ("medaid.batch", "settle_file", "medaid.batch.run"),
    ("medaid.batch", "recalculate", "medaid.batch.recalc"),
    ("medaid.batch", "settle_frame", "medaid.batch.settle"),
    ("medaid.batch.columnar", "settle_frame", "medaid.batch.settle"),
    ("medaid.report", "compute", "medaid.report.indicators"),
    ("medaid.report", "load_results", "medaid.report.indicators"),
    ("medaid.report", "load_ledger_results", "medaid.ledger.export"),
    ("medaid.report", "write_html", "medaid.report.html"),
    ("medaid.spark", "settle_spark", "medaid.spark.job"),
    ("medaid.spark", "main", "medaid.spark.job"),
    ("medaid.cli", "main", "medaid.cli.app"),
    ("medaid", "quote", "medaid.domain.engine"),
]


@pytest.mark.parametrize(("package", "name", "home"), REEXPORTS)
def test_a_documented_name_is_the_defining_modules_object(package, name, home):
    assert getattr(importlib.import_module(package), name) is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize("old", ["columnar", "readers", "scan", "exports", "report_input", "rules",
                                 "engine", "cli_desk", "html_report"])
def test_the_flat_modules_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"medaid.{old}")


def test_a_missing_name_is_an_attribute_error():
    import medaid.batch

    with pytest.raises(AttributeError, match="no_such_name"):
        medaid.batch.no_such_name  # noqa: B018


@pytest.mark.parametrize("module", ["medaid", "medaid.cli", "medaid.ledger", "medaid.batch", "medaid.report",
                                    "medaid.spark", "medaid.domain", "medaid.io"])
def test_importing_a_package_imports_no_heavy_library(module):
    code = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", (module, out)


def test_medaid_help_imports_no_heavy_library():
    code = ("import sys; from medaid.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stderr
    assert err.strip().splitlines()[-1] == "[]", err
