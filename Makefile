# Two commands on a fresh machine with Python 3.11+:
#   make demo   set up .venv and run the batch, report and desk examples on the bundled data
#   make test   set up .venv and run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test bench clean

$(VENV)/.stamp-base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[batch]'
	touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-base
	$(BIN)/python -m pip install -q -e '.[batch,test]'
	touch $@

demo: $(VENV)/.stamp-base
	$(BIN)/medaid rules check rules

test: $(VENV)/.stamp-test
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
