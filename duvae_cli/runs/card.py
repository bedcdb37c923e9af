"""The model card of an export (OUT/README.md; docs/use.md): Hugging Face's model card layout.

YAML front matter (the Hub's metadata: `library_name: duvae`, tags, datasets, metrics, and a
`model-index` with one result per split and evaluation settings, each metric carrying its estimator
as `config` and its settings as `args`), then what the model is, what it scores (metrics.csv and
probe.csv of the exported checkpoint), how it was trained (command, seed, epochs, machine time), how
to load it, how to push it to the Hub, and the sha256 of every other file in a `sha256` block that
`sha256sum -c` reads and `duvae` verifies on every load (export.py).

The YAML is written here (no YAML package): strings as JSON strings, which YAML reads as
double-quoted scalars; numbers as Python writes them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex

from duvae_cli.errors import DuvaeError

CHECKSUMS = re.compile(r"^```sha256\n(.*?)^```$", re.S | re.M)
LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9_.-]+)$")
UNITS = {"text": "nats per sentence", "image": "nats per image"}
SETTINGS = ("n_samples", "examples", "seed", "mi_estimator", "au_threshold", "precision")


def model_card(files: dict[str, bytes], shas: dict[str, str], run_name: str) -> str:
    """README.md of an export whose other files are `files` (name -> bytes), `shas` their sha256."""
    config = json.loads(files["config.json"])
    info = json.loads(files["manifest.json"])
    kind = json.loads(files["binding.json"])["format"]["kind"]
    metrics, probes = _rows(files.get("metrics.csv")), _rows(files.get("probe.csv"))
    scores = [r for r in metrics if r["estimator"] != "count"]  # n_examples, n_tokens: not scores
    results = _results(scores, config, kind)
    meta = {"library_name": "duvae", "license": "other",
            "tags": ["duvae", "variational-autoencoder", "posterior-collapse", config["model"], kind],
            "datasets": [config["dataset"]], "metrics": sorted({r["metric"] for r in scores}),
            "model-index": [{"name": run_name, "results": results}]}
    parts = ["---", *_yaml(meta), "---", "", *_about(config, kind, run_name), *_scores(metrics, probes, kind),
             *_training(config, info), *_loading(config, kind), *_checksums(shas)]
    return "\n".join(parts) + "\n"


def read_checksums(text: str, source) -> dict[str, str]:
    """{file: sha256} of a card's ```sha256 block; DuvaeError naming `source` if it is absent or odd."""
    match = CHECKSUMS.search(text)
    if match is None:
        raise DuvaeError(f"{source}: no sha256 block; not a duvae export's model card")
    listed = {}
    for line in match.group(1).splitlines():
        found = LINE.match(line)
        if found is None or found.group(2) in (".", "..") or found.group(2) in listed:
            raise DuvaeError(f"{source}: sha256 block line {line[:80]!r} is not '<sha256>  <file name>' "
                             "(a plain name in the export, each once)")
        listed[found.group(2)] = found.group(1)
    return listed


# ---------------------------------------------------------------------------------- sections ---

def _rows(data: bytes | None) -> list[dict]:
    return [] if data is None else list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _results(metrics: list[dict], config: dict, kind: str) -> list[dict]:
    """model-index results: one per split and evaluation settings (never mixed), finite values only."""
    task = {"type": "text-generation" if kind == "text" else "unconditional-image-generation",
            "name": "Density estimation and latent diagnostics"}
    results = []
    for split in sorted({r["split"] for r in metrics}):
        for group in _evaluations([r for r in metrics if r["split"] == split]):
            first = group[0]
            args = {k: _number(first.get(k, "")) for k in SETTINGS if first.get(k, "") != ""}
            entries = [{"type": r["metric"], "value": float(r["value"]), "name": _name(r, kind),
                        "config": r["estimator"], "args": args, "verified": False}
                       for r in group if r["value"] != ""]
            dataset = {"type": config["dataset"], "name": config["dataset"], "split": split}
            if first.get("split_sha256"):
                dataset["revision"] = first["split_sha256"]  # the split's fingerprint (data/binding.py)
            results.append({"task": task, "dataset": dataset, "metrics": entries})
    return results


def _evaluations(rows: list[dict]) -> list[list[dict]]:
    """Rows grouped by their settings (tables/runs.py SETTINGS); of each group the latest row per
    metric and estimator (`duvae evaluate` appends)."""
    groups: dict[tuple, dict] = {}
    for row in rows:
        latest = groups.setdefault(tuple(row.get(k, "") for k in SETTINGS), {})
        latest[(row["metric"], row["estimator"])] = row
    return [list(latest.values()) for latest in groups.values()]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _name(row: dict, kind: str) -> str:
    unit = "" if row["metric"] in ("au", "mi", "mpd", "ce") or "ppl" in row["metric"] else f", {UNITS[kind]}"
    return f"{row['metric']} on {row['split']} ({row['estimator']}{unit}, K={row.get('n_samples', '?')})"


def _about(config: dict, kind: str, run_name: str) -> list[str]:
    block = config["duvae_export"]
    return [f"# {run_name}: {config['model']} VAE on {config['dataset']}", "",
            f"A variational autoencoder trained with duvae {block['duvae_version']} "
            f"(model `{config['model']}`, {kind} data, latent size {config['latent_dim']}). This folder holds "
            f"the `{block['checkpoint']}` checkpoint of run `{block['run']}` (sha256 "
            f"`{block['checkpoint_sha256']}`); every number below was computed from that file.", ""]


def _scores(metrics: list[dict], probes: list[dict], kind: str) -> list[str]:
    lines = ["## Scores", ""]
    if not metrics and not probes:
        return lines + ["Not evaluated before export: `duvae evaluate RUN` first, or evaluate this folder "
                        "(see below).", ""]
    if metrics:
        lines += [f"Units: {UNITS[kind]}. K is the number of importance samples; numbers made with "
                  "other settings are listed apart, never averaged.", "",
                  "| split | metric | value | estimator | K | examples | eval seed |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['split']} | {r['metric']} | {r['value'] or 'not finite'} | {r['estimator']} | "
                  f"{r.get('n_samples', '')} | {r.get('examples', '')} | {r.get('seed', '')} |" for r in metrics]
        lines.append("")
    if probes:
        lines += ["Linear probe on the posterior means (probe.csv):", "",
                  "| split | labels | repeat | accuracy | n_train |", "|---|---|---|---|---|"]
        lines += [f"| {r['split']} | {r.get('labels', '')} | {r.get('repeat', '')} | {r['value']} | "
                  f"{r.get('n_train', '')} |" for r in probes]
        lines.append("")
    return lines


def _training(config: dict, info: dict) -> list[str]:
    argv = info.get("argv") or []
    command = "duvae " + shlex.join(str(a) for a in argv[1:]) if len(argv) > 1 else "not recorded (trained from Python)"
    seconds = info.get("train_seconds")
    facts = [("command", f"`{command}`"), ("seed", config.get("seed")), ("epochs", info.get("epochs_done")),
             ("optimizer steps", info.get("steps")), ("best validation loss", info.get("best_val_loss")),
             ("machine time", f"{seconds:.0f} s" if isinstance(seconds, (int, float)) else "unknown"),
             ("device", f"{info.get('device')} x {info.get('world_size', 1)} process(es), precision "
                        f"{config.get('precision')}"),
             ("started / finished (UTC)", f"{info.get('started_utc')} / {info.get('finished_utc')}"),
             ("versions", f"duvae {info.get('duvae_version')} (git {info.get('git_sha') or 'unknown'}), "
                          f"torch {info.get('torch')}, Python {info.get('python')}")]
    return ["## Training", "", *(f"- {name}: {value}" for name, value in facts),
            "", "The full resolved configuration is `config.json`; the per-epoch record `history.csv`.", ""]


def _loading(config: dict, kind: str) -> list[str]:
    example = 'model.encode(["the food was great"]).mean' if kind == "text" else "model.sample(4)"
    return ["## How to load", "", "```python", "import duvae_cli", "", 'model = duvae_cli.load("THIS_FOLDER")',
            example, "```", "",
            "`duvae encode THIS_FOLDER INPUT`, `duvae generate THIS_FOLDER --sample 5` and "
            "`duvae evaluate THIS_FOLDER --out RESULTS` work on it too; evaluating needs the same data "
            f"({config['dataset']}), found by its fingerprint (binding.json) under `--data-root DIR` or "
            "`data/`. Results go to `--out`: the folder itself is never modified.", "",
            "Loading checks the sha256 of every file below and refuses a folder that differs; nothing in "
            "it is executable (safetensors and JSON only).", "",
            "To publish it: `huggingface-cli upload USER/NAME THIS_FOLDER .`", ""]


def _checksums(shas: dict[str, str]) -> list[str]:
    return ["## Files", "", "```sha256", *(f"{sha}  {name}" for name, sha in sorted(shas.items())), "```"]


def _yaml(value, indent: int = 0) -> list[str]:
    """`value` (dicts, lists, scalars) as block YAML lines."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{pad}{key}:", *_yaml(item, indent + 2)]
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    lines = []
    for item in value:
        inner = _yaml(item, indent + 2) if isinstance(item, (dict, list)) and item else [f"{pad}  {_scalar(item)}"]
        lines += [f"{pad}- {inner[0].lstrip()}", *inner[1:]]
    return lines


def _scalar(value) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value) if value == value and abs(value) != float("inf") else json.dumps(str(value))
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(str(value))
