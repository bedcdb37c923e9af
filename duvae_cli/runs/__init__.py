"""Run directories and export folders (docs/runs.md, docs/use.md): creation, manifest and config
(run.py), where each file is (layout.py), safetensors checkpoints (checkpoint.py), the checks of
hostile input (trust.py), reloading a trained run or an export (load.py), history.csv, `duvae export`
(export.py, exported.py, card.py) and `duvae migrate` (migrate.py)."""
