-- Load every filterlake view into the DuckDB CLI (run from the repository root):
--   duckdb -cmd "SET VARIABLE lake = 'lake'" -init sql/init.sql
.read sql/tables.sql
.read sql/views.sql
.read sql/analysis.sql
