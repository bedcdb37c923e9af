"""Run directories: creation, manifest, checkpoints, reloading a trained run, history.csv (docs/runs.md)."""
