-- filterlake derived views; a source of the generated sql/init.sql.

-- The largest |w| of a filter: the divisor of the per-filter max-abs normalisation (methods.md §2).
CREATE OR REPLACE MACRO filter_peak(w0, w1, w2, w3, w4, w5, w6, w7, w8) AS
    greatest(abs(w0), abs(w1), abs(w2), abs(w3), abs(w4), abs(w5), abs(w6), abs(w7), abs(w8))::DOUBLE;

-- Every filter divided by its own max |w| (an all-zero filter stays zero), in DOUBLE.
CREATE OR REPLACE VIEW filters_scaled AS
SELECT model_id, layer_idx, filter_idx,
       w0 / s AS w0, w1 / s AS w1, w2 / s AS w2, w3 / s AS w3, w4 / s AS w4,
       w5 / s AS w5, w6 / s AS w6, w7 / s AS w7, w8 / s AS w8
FROM (SELECT *, coalesce(nullif(filter_peak(w0, w1, w2, w3, w4, w5, w6, w7, w8), 0), 1) AS s FROM filters);

-- Filters as one FLOAT[9] array (row-major 3x3), for list/array functions.
CREATE OR REPLACE VIEW filter_arrays AS
SELECT model_id, layer_idx, filter_idx, [w0, w1, w2, w3, w4, w5, w6, w7, w8]::FLOAT[9] AS w FROM filters;

-- Filters with the metadata of their model and layer: group by domain, task, architecture, depth, ...
CREATE OR REPLACE VIEW filters_meta AS
SELECT f.*, m.name, m.architecture, m.task, m.domain, m.modality, m.training_dataset, m.format,
       l.layer_name, l.in_channels, l.out_channels, l.conv_depth, l.conv_depth_norm
FROM filters AS f
JOIN models AS m USING (model_id)
JOIN layers AS l USING (model_id, layer_idx);

-- What each model lost to the 3x3 rule, one row per model and reason.
CREATE OR REPLACE VIEW skipped_layers AS
SELECT name, model_id, reason, n FROM (
    UNPIVOT (SELECT model_id, name, skipped_1x1, skipped_other_kernel, skipped_non_square, skipped_1d,
                    skipped_3d, skipped_transposed, skipped_unresolved FROM models)
    ON COLUMNS('^skipped_') INTO NAME reason VALUE n)
WHERE n > 0;

-- A unique readable label per model (the `model` grouping and the report's per-model views): its name; where
-- models share a name, the name and the parent folder of source_uri; where both are shared (or there is no
-- folder), also the first 8 hex digits of its model_id.
CREATE OR REPLACE VIEW model_labels AS
WITH named AS (
    SELECT model_id, coalesce(nullif(name, ''), left(model_id, 12)) AS base,
           nullif(regexp_extract(source_uri, '([^/\\#:]+)[/\\#][^/\\#]*$', 1), '') AS folder
    FROM models),
counted AS (
    SELECT *, count(*) OVER (PARTITION BY base) AS n_base, count(*) OVER (PARTITION BY base, folder) AS n_folder
    FROM named),
labelled AS (
    SELECT model_id, CASE WHEN n_base = 1 THEN base
                          WHEN folder IS NOT NULL AND n_folder = 1 THEN base || ' (' || folder || ')'
                          ELSE base || ' (' || coalesce(folder || ', ', '') || left(model_id, 8) || ')' END AS label
    FROM counted)
SELECT model_id, CASE WHEN count(*) OVER (PARTITION BY label) > 1 THEN label || ' [' || left(model_id, 8) || ']'
                      ELSE label END AS label
FROM labelled;

-- Models whose 3x3 filters are identical (same weights_sha256, whatever their file formats): one row per set of
-- two or more. The analysis counts each set once, through its kept model (the smallest model_id); the others are
-- merged into it. `labels_differ` flags sets whose members are labelled with different domains.
CREATE OR REPLACE VIEW duplicate_weights AS
SELECT weights_sha256,
       count(*) AS n_models,
       min(model_id) AS kept_model_id,
       list(model_id ORDER BY model_id) AS model_ids,
       list(name ORDER BY model_id) AS names,
       list(format ORDER BY model_id) AS formats,
       any_value(n_filters_3x3) AS n_filters,
       count(DISTINCT coalesce(domain, '')) > 1 AS labels_differ
FROM models
WHERE weights_sha256 IS NOT NULL
GROUP BY weights_sha256
HAVING count(*) > 1;
