# Set-up and everyday commands.  Each target creates .venv and installs nc
# into it first, so on a fresh machine `make demo` or `make test` is all it takes.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# the data sets (benchmarks, training); the tests need none
NC_SHARED_DIR ?= ../shared

.PHONY: demo test bench-lossless clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $(STAMP)

demo: $(STAMP)  ## encode and decode docs/sample.png with the shipped weights
	$(BIN)/nc encode docs/sample.png -o $(VENV)/sample.nc --force -v
	$(BIN)/nc info $(VENV)/sample.nc
	$(BIN)/nc decode $(VENV)/sample.nc -o $(VENV)/sample-decoded.png --force -v
	$(BIN)/python -c "import numpy as n; from PIL import Image as I; \
	assert (n.asarray(I.open('docs/sample.png')) == n.asarray(I.open('$(VENV)/sample-decoded.png'))).all(); \
	print('decoded image is identical to docs/sample.png')"

test: $(STAMP)  ## the test suite (what CI runs)
	$(BIN)/python -m pytest -q

bench-lossless: $(STAMP)  ## the Kodak lossless table
	$(BIN)/python -m bench lossless $(NC_SHARED_DIR)/data/kodak

clean:
	rm -rf $(VENV) .pytest_cache
