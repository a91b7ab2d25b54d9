-- filterlake base tables over a lake folder (Parquet; see schemas/lake_tables.json for the columns).
-- Only committed models are visible: `layers` and `filters` keep the rows of models that have a `models` row.
-- Set the lake folder first:  SET VARIABLE lake = 'lake';

CREATE OR REPLACE VIEW models AS
SELECT * FROM read_parquet(getvariable('lake') || '/models/*.parquet', union_by_name = true);

CREATE OR REPLACE VIEW layers AS
SELECT l.* FROM read_parquet(getvariable('lake') || '/layers/*.parquet', union_by_name = true) AS l
WHERE l.model_id IN (SELECT model_id FROM models);

CREATE OR REPLACE VIEW filters AS
SELECT f.* FROM read_parquet(getvariable('lake') || '/filters/*/*.parquet', hive_partitioning = true,
                             hive_types = {'model_id': VARCHAR}) AS f
WHERE f.model_id IN (SELECT model_id FROM models);
