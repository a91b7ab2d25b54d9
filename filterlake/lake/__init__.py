"""The lake on disk: table schemas, paths, the atomic model writer and DuckDB access."""
