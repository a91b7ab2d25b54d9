# filterlake: `make report` (the main job) and `make test` are all a new user needs.
PY      := .venv/bin/python
STAMP   := .venv/.installed
LAKE    ?= lake
CORPUS  ?= ../shared/corpus
export FILTERLAKE_LAKE := $(LAKE)

.PHONY: setup test lint report demo ingest serve cluster bench bench-large clean lock

setup: $(STAMP)  ## create .venv and install filterlake with its dev extras, at the tested versions of constraints.txt

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: the 2.13.0 CPU build (an unpinned torch pulls a multi-GB CUDA build)
	$(PY) -m pip install --quiet -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

test: setup  ## the whole test suite
	$(PY) -m pytest

lint: setup  ## ruff check and ruff format --check over the whole tree (CI runs it)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

lock:  ## re-resolve the newest versions pyproject.toml allows into constraints.txt (then run make test)
	rm -rf .venv-lock
	python3 -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet torch==2.13.0
	.venv-lock/bin/python -m pip install --quiet -e '.[dev,bench]'
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | sed 's/^torch==2.13.0+cpu$$/torch==2.13.0/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-lock

demo: setup  ## ingest the demo catalog (PyPI zoo), the shared corpus when present and untrained baselines, without Prefect
	$(PY) -m filterlake ingest -q --catalog catalog/pypi_zoo.toml $(if $(wildcard $(CORPUS)/MANIFEST.csv),--catalog $(CORPUS)/MANIFEST.csv)
	$(PY) -m filterlake baseline -q resnet18 vgg11 vgg16 unet

clean:  ## remove the lake, the report and caches (not the venv)
	rm -rf $(LAKE) report .cache .pytest_cache

report: demo  ## the main job: ingest the demo catalog (and the shared corpus when present), analyse, write report/index.html
	$(PY) -m filterlake report --out report

# Prefect flows (flows/): the demo catalog through the ingestion flow, and the scheduled drop-folder deployment.
WATCH    ?= dropbox
INTERVAL ?= 60

ingest: setup  ## ingest the demo catalog (and, when present, the shared corpus) through the Prefect flow, then the baselines
	$(PY) -m flows.ingest --lake $(LAKE) --catalog catalog/pypi_zoo.toml $(if $(wildcard $(CORPUS)/MANIFEST.csv),--catalog $(CORPUS)/MANIFEST.csv)
	$(PY) -m filterlake baseline -q --lake $(LAKE) resnet18 vgg11 vgg16 unet

serve: setup  ## serve the ingestion flow every INTERVAL seconds over WATCH (default ./dropbox) until Ctrl-C
	$(PY) -m flows.serve --watch $(WATCH) --lake $(LAKE) --interval $(INTERVAL)

# Scale-out (flows/cluster.py): a cluster on this machine for the flows' --dask. No `setup` prerequisite: it
# only starts processes of an existing venv (`make setup` makes one), and never reinstalls it.
WORKERS ?= 2

cluster:  ## a local Prefect server, a Dask scheduler and WORKERS (default 2) Dask workers for --dask (S3=1: and an S3 endpoint), until Ctrl-C
	$(PY) -m flows.cluster --workers $(WORKERS)$(if $(S3), --s3)

# Benchmarks (bench/): each stage's throughput against this machine's own limit, measured in the same run.
bench: setup  ## CI-sized benchmark (~6 min): 200k filters at x1 and x10, 1,000 small models for regrouping, 1 vs 2 Dask workers
	$(PY) -m bench.run --filters 200000 --scales 1,10 --regroup-models 1000 --scale-out-filters 200000 --out bench/out/ci.json

bench-large: setup  ## large benchmark (not in CI): 1M filters at x1, x10 and x100 (100M filters), ~15 GB of disk
	$(PY) -m bench.run --filters 1000000 --scales 1,10,100 --regroup-models 1000 --scale-out-filters 1000000 --out bench/results/large.json
