-- filterlake analysis tables (written by `filterlake analyze`); a source of the generated sql/init.sql.

-- Per-layer quality metrics and stored sufficient statistics (raw_*, sc_* scaled, scn_* scaled non-sparse).
-- (from its per-model files and compacted part, as sql/tables.sql reads `layers`)
CREATE OR REPLACE VIEW lake_layer_stats_files AS
SELECT * FROM read_parquet(lake_glob('layer_stats'));

CREATE OR REPLACE VIEW lake_layer_stats_compacted AS
SELECT * FROM read_parquet(lake_glob('layer_stats_compacted'));

CREATE OR REPLACE VIEW layer_stats AS
SELECT * FROM (
    SELECT * FROM lake_layer_stats_files
    UNION ALL
    SELECT * FROM lake_layer_stats_compacted
    WHERE model_id IN (SELECT model_id FROM lake_models_compacted)
      AND model_id NOT IN (SELECT model_id FROM lake_layer_stats_files))
WHERE model_id IN (SELECT model_id FROM models);

-- Fitted bases: id, selection, subset, N, EVR and mean (the full basis as JSON in `basis`).
CREATE OR REPLACE VIEW basis AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current FROM read_parquet(lake_glob('basis'));

-- Every per-basis view has a column `current`: true for the rows of the last analysis's basis (sum only those:
-- older bases' rows stay until `filterlake analyze` or `filterlake check` prunes them).

-- Coefficient histograms per (basis, spec = 'lo_hi_bins_subset', model, layer, component, bin); zero bins omitted.
-- A model's own file of a basis and spec supersedes its compacted rows of that basis and spec.
CREATE OR REPLACE VIEW lake_histograms_files AS
SELECT * FROM read_parquet(lake_glob('histograms'), hive_partitioning = true,
                           hive_types = {'basis': VARCHAR, 'spec': VARCHAR});

CREATE OR REPLACE VIEW lake_histograms_compacted AS
SELECT * FROM read_parquet(lake_glob('histograms_compacted'), hive_partitioning = true,
                           hive_types = {'basis': VARCHAR, 'spec': VARCHAR});

CREATE OR REPLACE VIEW histograms AS
SELECT *, basis = getvariable('filterlake_current_basis') AS current FROM (
    SELECT * FROM lake_histograms_files
    UNION ALL
    SELECT * FROM lake_histograms_compacted
    WHERE model_id IN (SELECT model_id FROM lake_models_compacted)
      AND basis || '/' || spec || '/' || model_id NOT IN (
          SELECT DISTINCT basis || '/' || spec || '/' || model_id FROM lake_histograms_files))
WHERE model_id IN (SELECT model_id FROM models);

-- Per-layer min/max of each coefficient in a basis (the global range of the cnn-filter-db preset).
CREATE OR REPLACE VIEW lake_extents_files AS
SELECT * FROM read_parquet(lake_glob('extents'), hive_partitioning = true, hive_types = {'basis': VARCHAR});

CREATE OR REPLACE VIEW lake_extents_compacted AS
SELECT * FROM read_parquet(lake_glob('extents_compacted'), hive_partitioning = true,
                           hive_types = {'basis': VARCHAR});

CREATE OR REPLACE VIEW coefficient_extents AS
SELECT *, basis = getvariable('filterlake_current_basis') AS current FROM (
    SELECT * FROM lake_extents_files
    UNION ALL
    SELECT * FROM lake_extents_compacted
    WHERE model_id IN (SELECT model_id FROM lake_models_compacted)
      AND basis || '/' || model_id NOT IN (SELECT DISTINCT basis || '/' || model_id FROM lake_extents_files))
WHERE model_id IN (SELECT model_id FROM models);

-- Stored pairwise shift matrices (one row per ordered pair of groups).
CREATE OR REPLACE VIEW shifts AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current FROM read_parquet(lake_glob('shifts'));

-- Stored comparisons of `filterlake analyze` (filterlake/derived/comparisons.py), per basis and preset:
-- shifts between the models of each architecture family (one row per ordered pair, in heatmap order),
CREATE OR REPLACE VIEW family_shifts AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('family_shifts'), hive_partitioning = false);

-- the medical vs non-medical permutation test with its bootstrap interval and null distribution,
CREATE OR REPLACE VIEW medical_test AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('medical_test'), hive_partitioning = false);

-- and the per-component symmetric KL between the pooled medical and non-medical histograms.
CREATE OR REPLACE VIEW medical_components AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('medical_components'), hive_partitioning = false);

-- The medical question with the confounders controlled: PERMANOVA with permutations within strata, and the
-- architecture-matched comparison inside each family (Holm-corrected).
CREATE OR REPLACE VIEW controlled_test AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('controlled_test'), hive_partitioning = false);

CREATE OR REPLACE VIEW domain_pairs AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('domain_pairs'), hive_partitioning = false);

CREATE OR REPLACE VIEW family_contrasts AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('family_contrasts'), hive_partitioning = false);

-- The papers' phenomena found by the analysis (spikey models and their layers, binary-like layers, near-total
-- sparsity), and each layer's frequency content in the 2-D DCT-II basis.
CREATE OR REPLACE VIEW phenomena AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('phenomena'), hive_partitioning = false);

CREATE OR REPLACE VIEW layer_frequency AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('layer_frequency'), hive_partitioning = false);

-- What training changed, per layer: D from the same layer of the untrained baselines of the model's family.
CREATE OR REPLACE VIEW baseline_shifts AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('baseline_shifts'), hive_partitioning = false);

-- Layer quality with model metadata: where are the degenerated layers?
CREATE OR REPLACE VIEW layer_quality AS
SELECT m.name, m.domain, m.architecture, l.layer_name, l.conv_depth_norm, s.*
FROM layer_stats AS s JOIN layers AS l USING (model_id, layer_idx) JOIN models AS m USING (model_id);
