# LuDosimetry: `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SHARED ?= ../shared
STAMP  := $(VENV)/.installed
SYSSTAMP := $(VENV)/.system-packages

.PHONY: demo test setup system-deps lint slicer-check bench clean

setup: $(STAMP) $(SYSSTAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,dask]"
	touch $@

# Debian packages: DICOM validator (dciodvfy) and converter (dcm2niix) used by the tests; a headless
# Chromium (report.pdf, report screenshots, the reports' browser tests) and poppler-utils (pdftotext,
# pdfinfo: the tests read the PDF).
$(SYSSTAMP): | $(VENV)/bin/python
	@if command -v dciodvfy >/dev/null && command -v dcm2niix >/dev/null && command -v chromium >/dev/null \
	  && command -v pdftotext >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools dcm2niix \
	    chromium poppler-utils >/dev/null; \
	else echo "please install the Debian packages dicom3tools, dcm2niix, chromium and poppler-utils"; exit 1; fi
	touch $@

demo: setup
	$(VENV)/bin/ludosimetry demo --out demo_output

lint: setup
	$(VENV)/bin/ruff check LuDosimetryLib LuDosimetry Testing bench

slicer-check:
	$(PYTHON) $(SHARED)/slicer/check_slicer_api.py --target v5.10.0 LuDosimetry

test: setup lint slicer-check
	$(PY) -m pytest -q -p no:cacheprovider

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
