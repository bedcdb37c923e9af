"""Evaluation metrics: importance-weighted likelihood, posterior diagnostics, `duvae evaluate`.

- `iw.py`: the IW bound, per-example noise, memory-bounded chunks;
- `scoring.py`: log p(x|z) for many z per sentence (fast path for the LSTM decoder);
- `posterior.py`: MI (whole-set, per-batch), AU, MPD, CE, per-dimension KL;
- `evaluate.py`: one pass over a split -> per-example arrays -> summary numbers;
- `report.py`, `store.py`: run directories, metrics.h5, metrics.csv, resumable partial results.
"""

from duvae_cli.metrics.evaluate import EvalOptions, TextExamples, parse_memory, score_examples, summarise
from duvae_cli.metrics.report import EvalReport, evaluate_run, evaluate_trained

__all__ = ["EvalOptions", "EvalReport", "TextExamples", "evaluate_run", "evaluate_trained", "parse_memory",
           "score_examples", "summarise"]
