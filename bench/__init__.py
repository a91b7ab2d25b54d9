"""filterlake benchmarks: a generator of synthetic model zoos (`bench.synthetic`), the runner (`bench.run`).

`make bench` (CI-sized, a few minutes) and `make bench-large` (100M filters, not in CI) call
`python -m bench.run`; results are written to `bench/results/*.json` with a printed table (`*.txt`).
Generated zoos and lakes live under `bench/out/` (gitignored) and are deleted after each scale.
See the docstring of `bench.run` for what is measured and how the targets are judged.
"""
