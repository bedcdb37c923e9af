"""`duvae classify RUN --predict FILE [--labels N]`: a probe saved by an earlier `duvae classify`
(probe/saved.py) applied to new, unlabelled text or images.

The input is read as every command reads new data (inputs.py; text checked for unknown words and
lengths, familiar.py; any labels in it are ignored), its features are those the probe was trained on
(`probe_features`: eval-mode posterior means, [mu0 ; zT] for a flow run), and each example gets one
line: its predicted label and that label's probability under the probe's softmax, `LABEL<TAB>P`
(`--json`: one JSON object a line, {"index", "line", "label", "probability"}).
Rows go to stdout as chunks are done (a closed stdout ends it quietly) or into `--out FILE`,
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from duvae_cli.io import atomic_path, write_stdout
from duvae_cli.options import Option
from duvae_cli.probe.features import probe_features
from duvae_cli.probe.saved import load_probe
from duvae_cli.progress import SILENT
from duvae_cli.use.encode import CHUNK, STREAM_CHUNK

PREDICT = Option("predict", Path, None, "Apply the saved probe (of --labels N) to this unlabelled file (text, "
                 "- for stdin, or .npz): one LABEL<TAB>probability line per example, on stdout or --out FILE.",
                 metavar="FILE")
PROBES = Option("probes", Path, None, "With --predict: the folder whose probes/ holds the saved probes (the --out "
                "DIR of the classify that trained them; default: the run directory).", metavar="DIR")


def predict_file(run_dir: Path, path: Path, budget: int | None, options, checks, reporter=SILENT,
                 out: Path | None = None, probes: Path | None = None, as_json: bool = False) -> dict:
    """Predict a label for every example of `path` with the saved probe; returns a summary."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained
    from duvae_cli.use.inputs import read_input
    from duvae_cli.use.newdata import log_input

    device = as_device(options.device)
    trained = load_trained(Path(run_dir), options.checkpoint, device=device, data_root=options.data_root,
                           needs_data=False)
    probe = load_probe(probes or trained.run_dir, budget, trained.checkpoint_name, trained.checkpoint_sha256)
    data = read_input(path, trained.dataset)
    familiar = log_input(data, reporter, trained, checks)
    reporter.log(f"probe {probe.path} ({probe.info['labels']} labels, test accuracy "
                 f"{probe.info['test_accuracy']:.4f} on {_trained_on(probe.info)})")
    chunk = CHUNK if out is not None else STREAM_CHUNK
    counts = np.zeros(probe.weight.shape[0], dtype=np.int64)
    with _sink(out) as write, reporter.task("predicting", len(data)) as task:
        for start in range(0, len(data), chunk):
            indices = np.arange(start, min(len(data), start + chunk))
            features = probe_features(trained.model, data.split, indices, trained.config.eval_batch_size, device)
            labels, probabilities = probe.predict(features)
            np.add.at(counts, labels, 1)
            write("".join(_row(i, data.lines, label, p, as_json) for i, label, p in zip(indices, labels, probabilities)))
            task.advance(len(indices))
    return {"run": str(trained.run_dir), "checkpoint": trained.checkpoint_name,
            "checkpoint_sha256": trained.checkpoint_sha256, "probe": str(probe.path), "labels": probe.info["labels"],
            "familiarity": familiar, "input": data.source, "n_examples": len(data),
            "predicted": {str(k): int(v) for k, v in enumerate(counts) if v}, "out": None if out is None else str(out)}


def _trained_on(info: dict) -> str:
    files = info.get("data", {}).get("files") or {}
    return files["train"]["source"] if "train" in files else f"the run's {info.get('train_source', 'train')} data"


def _row(index: int, lines, label: int, probability: float, as_json: bool) -> str:
    if as_json:
        return json.dumps({"index": int(index), "line": None if lines is None else int(lines[index]),
                           "label": int(label), "probability": float(probability)}) + "\n"
    return f"{int(label)}\t{probability:.6f}\n"


@contextlib.contextmanager
def _sink(out: Path | None) -> Iterator:
    """A `write(text)`: stdout (flushed, `| head` ends it quietly), or `out` renamed into place at the end."""
    if out is None:
        yield write_stdout
        return
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        yield handle.write
