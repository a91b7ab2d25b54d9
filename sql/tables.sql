-- filterlake base tables over a lake folder (Parquet; see schemas/lake_tables.json for the columns).
-- Only committed models are visible: `layers` and `filters` keep the rows of models that have a `models` row.
-- Set the lake folder first:  SET VARIABLE lake = 'lake';

-- lake_glob: generated from filterlake/lake/layout.py by `python -m filterlake.lake.layout`
CREATE OR REPLACE MACRO lake_glob(t) AS getvariable('lake') || CASE t
    WHEN 'models' THEN '/models/*.parquet'
    WHEN 'layers' THEN '/layers/*.parquet'
    WHEN 'filters' THEN '/filters/model_id=*/part-*.parquet'
    WHEN 'layer_stats' THEN '/layer_stats/*.parquet'
    WHEN 'basis' THEN '/basis/*.parquet'
    WHEN 'histograms' THEN '/histograms/basis=*/spec=*/*.parquet'
    WHEN 'extents' THEN '/extents/basis=*/*.parquet'
    WHEN 'shifts' THEN '/shifts/*__*__*.parquet'
    END;
-- end of lake_glob

CREATE OR REPLACE VIEW models AS
SELECT * FROM read_parquet(lake_glob('models'));

CREATE OR REPLACE VIEW layers AS
SELECT l.* FROM read_parquet(lake_glob('layers')) AS l
WHERE l.model_id IN (SELECT model_id FROM models);

CREATE OR REPLACE VIEW filters AS
SELECT f.* FROM read_parquet(lake_glob('filters'), hive_partitioning = true,
                             hive_types = {'model_id': VARCHAR}) AS f
WHERE f.model_id IN (SELECT model_id FROM models);
