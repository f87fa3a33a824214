# Two commands on a fresh machine with Python 3.11+:
#   make demo   set up .venv and run the batch, report and desk examples on the bundled data,
#               then the county scheme (rules/county/) on its example year
#   make test   set up .venv, run the two gates (make lint) and then the whole test suite
#   make lint   the gates alone: ruff (style, bugs) and mypy (types; strict where pyproject.toml says)
#   make bench  the benchmarks at full size but Spark (minutes); bench-quick: toy sizes (seconds)
#   make bench-compare BEFORE=<rev>   speed and outputs of <rev> against this working tree, in
#               one run (3-5 minutes; COMPARE_ARGS='--full' for full sizes, see --help)
#   make serve  run the county settlement service on 127.0.0.1:8000 (ledger ./medaid-ledger.sqlite3)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# The gates. Overridable on the command line (tests/test_docs.py checks the failure paths with
# `make test RUFF=false`): a gate that finds anything stops `make test` before the suite runs.
RUFF       := $(BIN)/ruff
MYPY       := $(BIN)/mypy
PYTEST     := $(BIN)/python -m pytest
# The suite runs on two processes (pytest-xdist, the test extra), each test module whole in one of
# them and the Spark modules together (tests/conftest.py): 0.63-0.68 of the serial time on a
# 2-core machine (README.md, Development). `make test XDIST=` runs it in one process.
XDIST      := -n 2 --dist loadfile
LINT_PATHS := src tests benchmarks examples
TYPE_PATHS := src/medaid

.PHONY: demo test lint bench bench-quick bench-compare serve clean

$(VENV)/.stamp-base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[batch]'
	@# the bytecode an installed (non-editable) medaid has: where PYTHONDONTWRITEBYTECODE is set,
	@# a source checkout would otherwise compile its modules again at every start (about 0.09 s)
	$(BIN)/python -m compileall -q src/medaid >/dev/null
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(BIN)/python -m pip install -q -e '.[batch,test,spark,service,postgres,lint]'
	touch $@

$(VENV)/.stamp-service: $(VENV)/.stamp-base
	$(BIN)/python -m pip install -q -e '.[batch,service,postgres]'
	touch $@

demo: $(VENV)/.stamp-base
	@mkdir -p out
	$(BIN)/medaid rules check rules
	$(BIN)/medaid batch examples/claims-2024.csv -o out/results-2024.csv --rules rules
	$(BIN)/medaid report out/results-2024.csv --budget 15000000 --html out/report-2024.html
	@rm -f out/demo-ledger.sqlite3
	$(BIN)/medaid settle --ledger out/demo-ledger.sqlite3 --rules rules --claim-id ZY2024050301 \
	    --person 500101198001011234 --self-pay 30000 --date 2024-05-03 --group key --kind inpatient
	@echo
	@echo "The county scheme (rules/county/yuxian-2024.toml, in Chinese) on its example year:"
	$(BIN)/medaid rules check rules/county
	$(BIN)/medaid batch examples/county-claims-2024.csv -o out/county-results-2024.csv --rules rules/county --lang zh
	$(BIN)/medaid report out/county-results-2024.csv --lang zh --html out/county-report-2024.html
	@echo
	@echo "Results: out/results-2024.csv   Report: out/report-2024.html   Desk ledger: out/demo-ledger.sqlite3"
	@echo "County scheme: out/county-results-2024.csv   Report: out/county-report-2024.html"

# Both gates run even when the first fails (all findings at once); either failing fails the target.
lint: $(VENV)/.stamp-test
	@failed=; \
	echo "ruff check $(LINT_PATHS)"; \
	$(RUFF) check $(LINT_PATHS) || failed="$$failed ruff"; \
	echo "mypy $(TYPE_PATHS)   (strictness per module: [tool.mypy] in pyproject.toml)"; \
	$(MYPY) $(TYPE_PATHS) || failed="$$failed mypy"; \
	if [ -n "$$failed" ]; then \
	  echo "make: gate failed:$$failed (findings above; 'make lint' reruns the gates alone," \
	       "'$(RUFF) check --fix $(LINT_PATHS)' fixes some ruff findings)" >&2; \
	  exit 1; \
	fi

test: lint
	$(PYTEST) -q $(XDIST)

bench: $(VENV)/.stamp-service
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_desk.py
	$(BIN)/python benchmarks/bench_batch.py --claims 1000000 --repeat 3
	$(BIN)/python benchmarks/bench_columnar.py 1000000
	$(BIN)/python benchmarks/bench_report.py --rows 10000000
	$(BIN)/python benchmarks/bench_service.py

bench-quick: $(VENV)/.stamp-service
	$(BIN)/python benchmarks/bench_engine.py --claims 2000 --repeat 1
	$(BIN)/python benchmarks/bench_desk.py --runs 3 --settlements 100 --rows 100
	$(BIN)/python benchmarks/bench_batch.py --claims 20000
	$(BIN)/python benchmarks/bench_columnar.py 20000 --repeat 1 --verify 20
	$(BIN)/python benchmarks/bench_totals.py examples/claims-2024.csv --rules rules --repeat 1
	$(BIN)/python benchmarks/bench_report.py --rows 20000 --repeat 1
	$(BIN)/python benchmarks/bench_service.py --settlements 200

serve: $(VENV)/.stamp-service
	$(BIN)/medaid serve --rules rules

ifneq ($(filter bench-compare,$(MAKECMDGOALS)),)
ifeq ($(BEFORE),)
$(error usage: make bench-compare BEFORE=<rev> [COMPARE_ARGS='--rounds 3 ...'])
endif
endif
bench-compare: $(VENV)/.stamp-base
	$(BIN)/python benchmarks/before_after.py --before $(BEFORE) $(COMPARE_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis .mypy_cache .ruff_cache
