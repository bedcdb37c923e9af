"""Using a trained run on new data: read inputs with the run's own tokenizer (`inputs.py`), encode
them (`encode.py`, written by `writers.py`), decode codes into sentences (`decode.py`, `generate.py`),
and score new data or probe on it next to the run's own splits (`newdata.py`).

The public Python entry point is `duvae_cli.load(run_dir)` (`duvae_cli/api.py`, docs/api.md); the
`duvae encode` and `duvae generate` commands and `--data` of `evaluate`/`classify` call these modules.
Nothing here imports matplotlib: image grids are drawn by `duvae_cli.viz.images`.
"""
