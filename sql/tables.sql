-- filterlake base tables over a lake folder (Parquet; see schemas/lake_tables.json for the columns).
-- Only committed models are visible: `layers` and `filters` keep the rows of models that have a `models` row.
-- A source of the generated sql/init.sql, which defines lake_glob(table) and the variable `lake` first.


-- `models`, `layers` and the per-model derived tables are each read from two sets of files (filterlake/lake/compact.py):
-- the files written since the last compaction, one per model (lake_<table>_files), and the compacted parts
-- (lake_<table>_compacted). A model's own file supersedes its compacted rows (a new model, or a metadata
-- correction of a compacted one); compacted rows count only for the models of the compacted models part (a
-- removed model's rows stay there, unseen, until the next compaction drops them).
CREATE OR REPLACE VIEW lake_models_files AS
SELECT * FROM read_parquet(lake_glob('models'));

CREATE OR REPLACE VIEW lake_models_compacted AS
SELECT * FROM read_parquet(lake_glob('models_compacted'));

CREATE OR REPLACE VIEW models AS
SELECT * FROM lake_models_files
UNION ALL
SELECT * FROM lake_models_compacted WHERE model_id NOT IN (SELECT model_id FROM lake_models_files);

CREATE OR REPLACE VIEW lake_layers_files AS
SELECT * FROM read_parquet(lake_glob('layers'));

CREATE OR REPLACE VIEW lake_layers_compacted AS
SELECT * FROM read_parquet(lake_glob('layers_compacted'));

CREATE OR REPLACE VIEW layers AS
SELECT * FROM (
    SELECT * FROM lake_layers_files
    UNION ALL
    SELECT * FROM lake_layers_compacted
    WHERE model_id IN (SELECT model_id FROM lake_models_compacted)
      AND model_id NOT IN (SELECT model_id FROM lake_layers_files))
WHERE model_id IN (SELECT model_id FROM models);

CREATE OR REPLACE VIEW filters AS
SELECT f.* FROM read_parquet(lake_glob('filters'), hive_partitioning = true,
                             hive_types = {'model_id': VARCHAR}) AS f
WHERE f.model_id IN (SELECT model_id FROM models);
