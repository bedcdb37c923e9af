"""duvae: variational autoencoders that resist posterior collapse (DU-VAE and its baselines).

The public Python API (docs/api.md), imported on first use so that `import duvae_cli` stays light:
`load(run_dir)` -> `Model` (encode, score, reconstruct, sample, interpolate; new text checked with
`InputChecks`, warned about with `UnfamiliarInput`); the building
blocks `VAE`, `build_regularizer`, `REGULARIZERS`, `build_flow`, `FLOWS`, `STRATEGIES` (every
method registered, duvae_cli/methods/); and the tables across runs
`build_report(run_dirs)` -> `ReportTable` (every number checked against its run's checkpoint),
`format_table`.
"""

__version__ = "0.1.0"

_API = {"load": "duvae_cli.api", "Model": "duvae_cli.api", "InputChecks": "duvae_cli.use.familiar",
        "UnfamiliarInput": "duvae_cli.use.familiar", "VAE": "duvae_cli.models",
        "build_regularizer": "duvae_cli.methods", "REGULARIZERS": "duvae_cli.methods",
        "build_flow": "duvae_cli.methods", "FLOWS": "duvae_cli.methods", "STRATEGIES": "duvae_cli.methods",
        "build_report": "duvae_cli.tables", "ReportTable": "duvae_cli.tables", "format_table": "duvae_cli.tables"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'duvae_cli' has no attribute {name!r}")
