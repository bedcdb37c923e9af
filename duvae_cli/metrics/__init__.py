"""Evaluation metrics: importance-weighted likelihood, posterior diagnostics, `duvae evaluate`.

- `iw.py`: the IW bound, per-example noise, memory-bounded chunks;
- `scoring.py`: log p(x|z) for many z per sentence (fast path for the LSTM decoder);
- `posterior.py`: MI (whole-set, per-batch), AU, MPD, CE, per-dimension KL;
- `passes.py`: the pass over a split that validation and evaluation share;
- `evaluate.py`: one pass over a split -> per-example arrays -> summary numbers;
- `report.py`, `store.py`: run directories, metrics.h5, metrics.csv, resumable partial results.
"""

import importlib

_LAZY = {"EvalOptions": "evaluate", "EVAL_OPTIONS": "evaluate", "score_examples": "evaluate",
         "summarise": "evaluate", "EvalReport": "report", "evaluate_run": "report", "evaluate_trained": "report"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Imported on first use, so that `duvae_cli.metrics.names` is read without importing torch."""
    if name in _LAZY:
        return getattr(importlib.import_module(f"duvae_cli.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'duvae_cli.metrics' has no attribute {name!r}")
