-- filterlake base tables over a lake folder (Parquet; see schemas/lake_tables.json for the columns).
-- Only committed models are visible: `layers` and `filters` keep the rows of models that have a `models` row.
-- A source of the generated sql/init.sql, which defines lake_glob(table) and the variable `lake` first.


CREATE OR REPLACE VIEW models AS
SELECT * FROM read_parquet(lake_glob('models'));

CREATE OR REPLACE VIEW layers AS
SELECT l.* FROM read_parquet(lake_glob('layers')) AS l
WHERE l.model_id IN (SELECT model_id FROM models);

CREATE OR REPLACE VIEW filters AS
SELECT f.* FROM read_parquet(lake_glob('filters'), hive_partitioning = true,
                             hive_types = {'model_id': VARCHAR}) AS f
WHERE f.model_id IN (SELECT model_id FROM models);
