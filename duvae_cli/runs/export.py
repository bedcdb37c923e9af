"""`duvae export RUN OUT`: a run as a self-contained, Hub-style folder a colleague can load (docs/use.md).

    OUT/README.md          the model card (card.py): YAML metadata, scores, training, how to load,
                           and the sha256 of every other file
    OUT/model.safetensors  the weights of one checkpoint, with their state-dict names
    OUT/config.json        the resolved config, plus a "duvae_export" block (version, run, checkpoint)
    OUT/manifest.json      how the run was made (command, versions, seed, device, times)
    OUT/binding.json       the data fingerprints (data/binding.py) and the vocabulary
    OUT/vocab.txt          text runs: token i on line i + 1; OUT/tokenizer.model: sentencepiece runs
    OUT/history.csv        one row per training epoch
    OUT/metrics.csv, OUT/probe.csv   the numbers of the exported checkpoint, with their provenance

An export is written into a temporary folder beside OUT and renamed into place, so OUT appears
whole or not at all; it is never overwritten. Paths of the author's machine (the dataset's path) are
left out: the data is found again by its fingerprints, like a moved run's (data/locate.py). Reading
one back is exported.py (verification) and load.py `load_export`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from duvae_cli import __version__
from duvae_cli.data import binding
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import sha256_bytes
from duvae_cli.runs.card import model_card
from duvae_cli.runs.checkpoint import load_checkpoint_hashed, weights_bytes, write_file
from duvae_cli.runs.exported import CARD, FORMAT, SENTENCEPIECE, VOCAB
from duvae_cli.runs.layout import EXPORT_KEY, EXPORT_WEIGHTS, checkpoint_file, is_export, require_run_dir
from duvae_cli.runs.load import run_data
from duvae_cli.runs.run import read_config, read_json
from duvae_cli.runs.selfcheck import check_checkpoint
from duvae_cli.runs.trust import check_folder


def export_run(run_dir: Path, out: Path, checkpoint: str = "best") -> dict:
    """Write the export of `run_dir`'s `checkpoint` to `out` (which must not exist); a summary."""
    run_dir, out = Path(run_dir), Path(out)
    require_run_dir(run_dir)
    if is_export(run_dir):
        raise UsageError(f"{run_dir}: already an export; copy the folder to share it again")
    if out.exists() or out.is_symlink():
        raise UsageError(f"OUT {out}: exists; an export is never written over anything (choose a new folder)")
    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint {checkpoint!r}: choose best or last")
    run_dir = run_dir.resolve()
    check_folder(run_dir)
    path = checkpoint_file(run_dir, checkpoint)
    config = read_config(run_dir)
    payload, sha = load_checkpoint_hashed(path)
    check_checkpoint(payload, config, path)
    info = read_json(run_dir / "manifest.json")
    files = _files(run_dir, config, payload["model"], checkpoint, sha, info, *_longest(run_dir, config, info))
    files[CARD] = _card(files, run_dir)
    _write_folder(out, files)
    return {"export": str(out), "run": str(run_dir), "checkpoint": checkpoint, "checkpoint_sha256": sha,
            "files": sorted(files)}


def _files(run_dir: Path, config, weights: dict, checkpoint: str, sha: str, info: dict,
           longest: int | None, longest_train: int | None = None) -> dict[str, bytes]:
    """The export's files but the card, as bytes."""
    block = {"format": FORMAT, "duvae_version": __version__, "run": run_dir.name, "checkpoint": checkpoint,
             "checkpoint_sha256": sha, "exported_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if longest is not None:  # what `generate` decodes up to without the data (use/generate.py)
        block["longest_sentence"] = longest
    if longest_train is not None:  # what new text is compared with without the data (use/familiar.py)
        block["longest_train_sentence"] = longest_train
    bound = binding.read(run_dir) or _bind_now(run_dir, config, info)
    files = {EXPORT_WEIGHTS: weights_bytes(weights, {k: str(v) for k, v in block.items() if k != "format"}),
             "config.json": _json({**config.to_dict(), "data_root": "data", EXPORT_KEY: block}),
             "manifest.json": _json(_without_paths(info)),
             binding.FILENAME: _json({k: v for k, v in bound.items() if k != "dataset_path"})}
    if bound.get("vocab") is not None:
        files[VOCAB] = "".join(f"{token}\n" for token in bound["vocab"]).encode("utf-8")
    if bound.get("sentencepiece_model_b64"):
        files[SENTENCEPIECE] = base64.b64decode(bound["sentencepiece_model_b64"])
    if (run_dir / "history.csv").is_file():
        files["history.csv"] = (run_dir / "history.csv").read_bytes()
    for name in ("metrics.csv", "probe.csv"):
        rows = _rows_of(run_dir / name, checkpoint, sha)
        if rows is not None:
            files[name] = rows
    return files


def _bind_now(run_dir: Path, config, info: dict) -> dict:
    """A run older than binding.json: the binding of its data, found by the manifest's sha256."""
    try:
        dataset, _ = run_data(run_dir, config, info)
    except DuvaeError as exc:
        raise DuvaeError(f"{run_dir}: no {binding.FILENAME} (a run older than data bindings) and its data is not "
                         f"at hand to fingerprint ({exc})") from None
    return binding.stored(dataset)


def _longest(run_dir: Path, config, info: dict) -> tuple[int | None, int | None]:
    """(the longest sentence of the run's text data, the longest it trained on: its train split's first
    `train_examples`), when the data is at hand; else None."""
    try:
        dataset, _ = run_data(run_dir, config, info)
    except DuvaeError:
        return None, None
    lengths = [int(s.lengths.max()) for s in dataset.splits.values() if hasattr(s, "lengths") and len(s)]
    train = dataset.splits.get("train")
    trained = None
    if train is not None and hasattr(train, "lengths") and len(train):
        trained = int(train.lengths[:config.train_examples or None].max())
    return (max(lengths) if lengths else None), trained


def _json(payload: dict) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def _without_paths(info: dict) -> dict:
    """The manifest without the dataset's path on the author's machine."""
    info = {k: v for k, v in info.items() if k != "data_path"}
    if isinstance(info.get("data_binding"), dict):
        info["data_binding"] = {k: v for k, v in info["data_binding"].items() if k != "dataset_path"}
    return info


def _rows_of(path: Path, checkpoint: str, sha: str) -> bytes | None:
    """The CSV rows of `path` computed from this very checkpoint file; None when there are none."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [r for r in reader if r.get("checkpoint", checkpoint) in ("", checkpoint)
                and r.get("checkpoint_sha256") == sha]
        columns = reader.fieldnames or []
    if not rows:
        return None
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def _card(files: dict[str, bytes], run_dir: Path) -> bytes:
    shas = {name: sha256_bytes(data) for name, data in sorted(files.items())}
    return model_card(files, shas, run_dir.name).encode("utf-8")


def _write_folder(out: Path, files: dict[str, bytes]) -> None:
    """All files into a temporary folder beside `out`, then one rename: `out` appears whole."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    except OSError as exc:
        raise DuvaeError(f"OUT {out}: cannot create it ({exc.strerror or exc})") from None
    try:
        for name, data in files.items():
            write_file(tmp / name, data)
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, out)  # fails, and keeps nothing, if `out` appeared meanwhile
    except OSError as exc:
        raise DuvaeError(f"OUT {out}: cannot write it ({exc.strerror or exc}); nothing was kept") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
