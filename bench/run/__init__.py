"""The filterlake benchmark: each stage's throughput against this machine's own limit, in the same run.

    python -m bench.run --filters N [--scales 1,10,100] [--regroup-models 1000] [--out bench/results/NAME.json]

For every scale s (a synthetic zoo of about N*s filters made by `bench.synthetic`) the runner measures, each
in its own subprocess (`python -m bench.run stage ...`, so the peak RSS of a stage is the child's ru_maxrss
from wait4):

* **ingest**: `filterlake.ingest.ingest([zoo_dir], lake)` in `--ingest-workers` worker processes (default one
  per core, as `filterlake ingest --workers 0`): filters/s and checkpoint MB/s. Its limit, `limit-ingest`, is
  bare pyarrow: read every checkpoint file's bytes, view them as float32, take as many values as the zoo has
  filter values (9 per filter) and write them as 9 float32 columns with
  `pq.write_table(..., compression="zstd", use_dictionary=False)` (in 1M-row tables, like the lake's row
  groups).
* **analysis**: `filterlake.derived.analyze.analyze(lake, "medical", ("domain",))` on the fresh lake (layer
  statistics + basis + per-layer histograms + shifts). Its limit, `limit-scan`, is one bare DuckDB scan
  `SELECT sum(w0), ..., sum(w8) FROM read_parquet('LAKE/<GLOBS["filters"]>')` of the same lake (the glob of
  `filterlake.lake.layout`).
* **analysis with a frozen basis**: the same analysis on a second lake holding the same base tables (filters
  hard-linked), with the basis the first analysis fitted given as a file (`filterlake basis export`,
  `analyze --basis FILE`): layer statistics and histograms in one read. Its limit is the same bare scan.
* **JIT**: the compiled kernels' first call (`numeric.kernels.warm_up`: compiling them, or loading them from
  numba's cache) is timed before the analysis clock starts and printed apart.
* **peers** (`peers`), on the same lake: CNN Filter DB's notebook path (every filter in one float32 array,
  max-abs scaling, sklearn PCA, numpy histograms per domain, the KL matrix), compared with filterlake's
  analysis up to its stored shift matrix (the same job), where its arrays fit in memory (estimated from their
  sizes; it is never run past that); and `torchconvquality.measure_quality` on torch modules built from the
  lake's layers (on the models up to `--peer-filters` filters), compared per filter with filterlake's layer
  statistics stage.
* **regroup-all** (informational): the pairwise shift matrix grouped by model `name` over all models of the
  scale's lake, with the lake's `filters` folder moved away.

Then a separate zoo of `--regroup-models` (1,000) small models is ingested and analysed, and the **regroup**
stage times `grouped_counts(..., "name")` + `shift_table` while the `filters` folder has been moved out of the
lake (it can only succeed by reading the stored histograms; the `filters` view is checked to be empty).
Opening the lake's DuckDB views first (`connect`, which binds views over every per-model file) is timed and
reported apart.

Times are measured inside the child around the call, after its imports (torch, onnx, duckdb, ... are imported
first: a constant ~2 s per process that is not throughput; the ingest workers are started and do the same
imports before the clock starts); the child's whole wall time is recorded too. Zoo files and lakes are fresh
in the page cache for both a stage and its limit (same conditions). The load average before and after the run
is recorded: on a shared machine, other processes slow every stage.

Targets (each printed PASS / NOT MET; judged at the largest scale, the others are printed for reference):
ingest >= 50% of the limit's filters/s; analysis <= 3x the bare scan time (with a frozen basis <= 2x) and its
peak RSS <= 2 GB; filterlake faster than both peers wherever they fit (ratios < 1); cost per
filter of ingest and analysis flat within 20% between the two largest scales (10x -> 100x for
`make bench-large`); regrouping 1,000 models < 2 s. An extrapolation to CNN Filter DB's 1.46 billion filters
uses the per-filter costs measured at the largest scale (linear, which the flatness target checks).

Finally the **import** stage (`import_stage`): `import_cnn_filter_db` of a synthetic CNN Filter DB dataset.h5 of
`--import-filters` filters (2M) against reading its float64 chunks with h5py and writing them as float32 zstd
Parquet with bare pyarrow; target >= 50% of that limit.

With `--scale-out-filters N` (default 0: skipped), the **scale-out** stage (`scale_out`): a zoo of N filters
ingested and analysed by the Prefect flows (`flows.ingest --dask`, `flows.analyze --dask`) on a Dask
LocalCluster of 1 and then of 2 worker processes of one thread each, behind a temporary Prefect server; each
flow is timed once the workers are up and have imported the readers, and the speed-up is the ratio of the two
times (informational, no target).

With `--object-store-filters N` (default: `--scale-out-filters`, so `make bench` runs it; 0: skipped), the
**object-store** stage (`object_store`): a zoo of N filters ingested (`filterlake.ingest.ingest`, in
`--ingest-workers` processes) and then analysed (`filterlake.derived.analyze.analyze(lake, "medical",
("domain",))`) once into a lake folder and once into `s3://filterlake-bench/lake` on a real S3 endpoint, a
`moto_server` started on 127.0.0.1 for the stage (objects in memory, no network: what it measures is
filterlake's own cost of an object lake, its commit protocol's requests and the analysis's working copy). Both
children get the same AWS environment and a fresh `FILTERLAKE_CACHE` in the work folder (the working copy,
removed after); each run is checked exact (every model of the manifest ingested with all its filters, layer
statistics computed for every model). It reports both runs' ingest and analysis times and the ratios S3 / local
of each (informational, no target).

Modules: `cli` (the command line and the whole run), `scales` (one scale's zoo, stages and metrics), `stages`
and `limits` (what the child processes time), `peers` (the two peers), `import_stage` (the CNN Filter DB
import and its limit), `scale_out` (the flows on 1 and 2 Dask workers), `object_store` (local disk vs an S3
endpoint), `measure` (the child process, its RSS and times), `machine` (what it ran on), `judge` (targets,
extrapolation), `tables` (the printed tables).
"""
