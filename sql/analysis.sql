-- filterlake analysis tables (written by `filterlake analyze`); a source of the generated sql/init.sql.

-- Per-layer quality metrics and stored sufficient statistics (raw_*, sc_* scaled, scn_* scaled non-sparse).
CREATE OR REPLACE VIEW layer_stats AS
SELECT * FROM read_parquet(lake_glob('layer_stats'))
WHERE model_id IN (SELECT model_id FROM models);

-- Fitted bases: id, selection, subset, N, EVR and mean (the full basis as JSON in `basis`).
CREATE OR REPLACE VIEW basis AS
SELECT *, basis_id = getvariable('filterlake_current_basis') AS current FROM read_parquet(lake_glob('basis'));

-- Every per-basis view has a column `current`: true for the rows of the last analysis's basis (sum only those:
-- older bases' rows stay until `filterlake analyze` or `filterlake check` prunes them).

-- Coefficient histograms per (basis, spec = 'lo_hi_bins_subset', model, layer, component, bin); zero bins omitted.
CREATE OR REPLACE VIEW histograms AS
SELECT *, basis = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('histograms'), hive_partitioning = true,
                           hive_types = {'basis': VARCHAR, 'spec': VARCHAR})
WHERE model_id IN (SELECT model_id FROM models);

-- Per-layer min/max of each coefficient in a basis (the global range of the cnn-filter-db preset).
CREATE OR REPLACE VIEW coefficient_extents AS
SELECT *, basis = getvariable('filterlake_current_basis') AS current
FROM read_parquet(lake_glob('extents'), hive_partitioning = true,
                           hive_types = {'basis': VARCHAR})
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

-- Layer quality with model metadata: where are the degenerated layers?
CREATE OR REPLACE VIEW layer_quality AS
SELECT m.name, m.domain, m.architecture, l.layer_name, l.conv_depth_norm, s.*
FROM layer_stats AS s JOIN layers AS l USING (model_id, layer_idx) JOIN models AS m USING (model_id);
