"""Every stored number keeps what made it, and whatever shows numbers checks them against the run's
checkpoint as it is now (issue 28; docs/reliability.md "Honest numbers").

The end-to-end tests train one tiny DU-VAE on a small synthetic corpus (module fixture, a few seconds)
and work on copies of it."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shlex
import shutil
from pathlib import Path

import h5py
import pytest

from duvae_cli.prepare import synthetic
from duvae_cli.prepare.options import PrepareOptions
from duvae_cli.prepare.prepare import prepare_dataset
from duvae_cli.io import sha256_file
from duvae_cli.config.resolve import resolve_config
from duvae_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from duvae_cli.train.session import start_run

TINY = dict(embed_dim=8, hidden_dim=8, latent_dim=2, batch_size=16, eval_batch_size=48, warm_up=1.0,
            epochs=1, device="cpu", precision="fp32")


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A 1-epoch DU-VAE on the synthetic corpus at 90/48/48 sentences (treat as read-only: copy it)."""
    root = tmp_path_factory.mktemp("provenance")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "SyntheticConfig", functools.partial(synthetic.SyntheticConfig,
                                                                      sizes=(90, 48, 48)))
        prepare_dataset("synthetic", PrepareOptions(out=root / "data"))
    config = resolve_config("synthetic", "du", {**TINY, "data_root": str(root / "data")})
    return start_run(config, run_dir=root / "runs" / "synthetic-du")


@pytest.fixture
def run(trained_run, tmp_path) -> Path:
    copy = tmp_path / "runs" / "synthetic-du"
    shutil.copytree(trained_run, copy)
    return copy


def test_k10_and_k20_are_two_rows_and_training_on_makes_them_stale(duvae, run, tmp_path, monkeypatch):
    """The issue's scenario: evaluate with K = 10 and K = 20, report; resume to 2 epochs: the numbers
    are marked stale, --strict exits 1 writing nothing, and the commands named refresh them."""
    monkeypatch.chdir(tmp_path)
    for k in (10, 20):
        assert duvae("evaluate", run, "--checkpoint", "last", "--iw-samples", k, "--quiet").code == 0
    result = duvae("report", run, "--checkpoint", "last", "--format", "csv")
    assert result.code == 0 and result.stderr == "", result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted(r["K"] for r in rows) == ["10", "20"]  # two rows, never one average
    assert all(r["runs"] == "1" and r["examples"] == "48" and r["stale"] == "no" for r in rows)
    assert duvae("report", run, "--checkpoint", "last", "--strict").code == 0

    assert duvae("train", "--resume", run, "--epochs", "2", "--quiet").code == 0
    tables = {}
    for fmt in ("markdown", "csv", "latex", "json"):
        result = duvae("report", run, "--checkpoint", "last", "--format", fmt, "--quiet")
        assert result.code == 0 and result.stderr.count("\n") == 1, result.stderr  # one line, even with -q
        assert "stale" in result.stderr and run.name in result.stderr
        tables[fmt] = result.stdout
    assert [(r["K"], r["stale"], r["stale_runs"]) for r in csv.DictReader(io.StringIO(tables["csv"]))] == \
        [("10", "yes", run.name), ("20", "yes", run.name)]
    assert tables["markdown"].count("| 1 | yes |") == 2 and tables["latex"].count("& 1 & yes &") == 2
    payload = json.loads(tables["json"])
    assert payload["current"] is False and [r["stale"] for r in payload["rows"]] == ["yes", "yes"]
    out = tmp_path / "table.md"
    strict = duvae("report", run, "--checkpoint", "last", "--strict", "--out", out)
    assert strict.code == 1 and strict.stderr.count("\n") == 1 and "--strict" in strict.stderr
    assert not out.exists()  # nothing written

    commands = strict.stderr.split("refresh with: ", 1)[1].strip().split(" ; ")
    assert len(commands) == 2 and all(c.startswith("duvae evaluate ") for c in commands)
    for command in commands:  # the named commands recompute exactly the stale numbers
        assert duvae(*shlex.split(command)[1:], "--quiet").code == 0
    assert duvae("report", run, "--checkpoint", "last", "--strict").code == 0


def test_best_numbers_are_stale_exactly_when_best_pt_changed(duvae, run):
    assert duvae("evaluate", run, "--iw-samples", 4, "--quiet").code == 0
    before = sha256_file(run / "checkpoints" / "best.safetensors")
    assert duvae("train", "--resume", run, "--epochs", "2", "--quiet").code == 0
    changed = sha256_file(run / "checkpoints" / "best.safetensors") != before
    result = duvae("report", run, "--strict")
    assert result.code == (1 if changed else 0), result.stderr


def test_rows_carry_the_checkpoint_data_and_every_setting(duvae, run):
    assert duvae("evaluate", run, "--iw-samples", 6, "--examples", 20, "--seed", 3, "--au-threshold", 0.02,
                 "--quiet").code == 0
    assert duvae("classify", run, "--labels", 10, "--quiet").code == 0
    binding = json.loads((run / "binding.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    sha = sha256_file(run / "checkpoints" / "best.safetensors")
    metrics = read_rows(run / "metrics.csv")
    assert {r["metric"]: r["value"] for r in metrics}["n_examples"] == "20"
    for row in metrics:
        assert (row["checkpoint"], row["checkpoint_sha256"]) == ("best", sha)
        assert row["split_sha256"] == binding["splits"]["test"] and row["dataset_sha256"] == manifest["data_sha256"]
        assert (row["n_samples"], row["examples"], row["seed"]) == ("6", "20", "3")
        assert (row["mi_estimator"], row["au_threshold"], row["precision"]) == ("whole", "0.02", "fp32")
    probe = read_rows(run / "probe.csv")
    assert probe and all(r["checkpoint_sha256"] == sha and r["precision"] == "fp32" and r["examples"] == r["n_samples"]
                         for r in probe)
    assert {r["split"]: r["split_sha256"] for r in probe} == {s: binding["splits"][s] for s in ("test", "valid")}


def _metrics_csv(path: Path, rows: list[dict]) -> None:
    from duvae_cli.metrics.store import CSV_COLUMNS

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _hand_run(root: Path, name: str, checkpoint: bytes = b"weights", seed: int = 1) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "yelp", "model": "du", "gamma": 0.5, "p": 0.8,
                                                 "seed": seed}))
    (run / "checkpoints" / "best.safetensors").write_bytes(checkpoint)
    return run


def _row(run: Path, k: int, examples: int, value: float, sha: str, metric: str = "iw_nll") -> dict:
    return {"run": run.name, "dataset": "yelp", "model": "du", "split": "test", "metric": metric, "value": value,
            "estimator": "iw", "n_samples": k, "seed": 783435, "checkpoint": "best", "checkpoint_sha256": sha,
            "split_sha256": "f" * 64, "examples": examples, "mi_estimator": "whole", "au_threshold": 0.01,
            "precision": "fp32"}


def test_other_settings_are_never_averaged_and_a_repeated_evaluation_counts_once(tmp_path):
    from duvae_cli.tables import build_report

    a, b = _hand_run(tmp_path, "a"), _hand_run(tmp_path, "b", seed=2)
    now = sha256_file(a / "checkpoints" / "best.safetensors")
    _metrics_csv(a / "metrics.csv", [_row(a, 50, 2000, 100.0, "0" * 64), _row(a, 20, 200, 90.0, "0" * 64),
                                     _row(a, 50, 2000, 80.0, now)])  # K=50 again, on today's checkpoint
    _metrics_csv(b / "metrics.csv", [_row(b, 50, 2000, 84.0, now)])
    table = build_report([a, b], ("iw_nll",))
    by_k = {r.evaluation["n_samples"]: r for r in table.rows}
    assert sorted(by_k) == ["20", "50"]
    k50, k20 = by_k["50"], by_k["20"]
    assert k50.runs == ["a", "b"] and k50.cells[("metric", "iw_nll", "iw")].values == [80.0, 84.0]
    assert k50.stale == "no"  # a's first K=50 evaluation is superseded, not averaged in
    assert (k20.runs, k20.stale, k20.stale_runs) == (["a"], "yes", ["a"])
    assert not table.current and "--iw-samples 20 --examples 200" in table.freshness_note()


def test_an_old_metrics_csv_is_read_and_its_unknown_settings_equal_nothing(tmp_path, duvae):
    """metrics.csv written before the settings columns: read, shown as ?, never averaged with any
    other run's numbers; a new evaluation with the same seed and K replaces its rows."""
    from duvae_cli.metrics.store import update_metrics_csv
    from duvae_cli.tables import build_report, format_table

    runs = [_hand_run(tmp_path, name, seed=i) for i, name in enumerate(("old1", "old2", "new"))]
    now = sha256_file(runs[0] / "checkpoints" / "best.safetensors")
    header = "run,dataset,model,split,metric,value,estimator,n_samples,seed,checkpoint,checkpoint_sha256\n"
    for run, value in zip(runs[:2], (100.0, 102.0)):
        (run / "metrics.csv").write_text(header + f"{run.name},yelp,du,test,iw_nll,{value},iw,50,783435,best,{now}\n")
    _metrics_csv(runs[2] / "metrics.csv", [_row(runs[2], 50, 2000, 104.0, now)])
    table = build_report(runs, ("iw_nll",))
    assert sorted(len(r.runs) for r in table.rows) == [1, 1, 1]
    assert table.setting_columns[:2] == ["n_samples", "examples"] and "precision" in table.setting_columns
    markdown = format_table(table, "markdown")
    assert markdown.count("| 50 | ? |") == 2 and "| 50 | 2000 |" in markdown

    new = _row(runs[0], 50, 2000, 99.0, now)
    update_metrics_csv(runs[0] / "metrics.csv", [new])
    rows = read_rows(runs[0] / "metrics.csv")
    assert [(r["value"], r["examples"]) for r in rows] == [("99.0", "2000")]
    update_metrics_csv(runs[0] / "metrics.csv", [{**new, "examples": 200, "value": 98.0}])
    assert [r["examples"] for r in read_rows(runs[0] / "metrics.csv")] == ["2000", "200"]  # both kept


def test_the_checkpoint_sha_cache_never_outlives_the_file(tmp_path, monkeypatch):
    from duvae_cli.tables import fresh

    run = _hand_run(tmp_path, "r", b"a" * 100)
    path = run / "checkpoints" / "best.safetensors"
    assert fresh.current_sha256(run, "best") == sha256_file(path)
    cache = json.loads((path.parent / fresh.CACHE).read_text())
    assert cache["best"]["sha256"] == sha256_file(path)
    calls = []
    monkeypatch.setattr(fresh, "sha256_file", lambda p: calls.append(p) or sha256_file(p))
    assert fresh.current_sha256(run, "best") == sha256_file(path) and calls == []  # from the cache
    stat = path.stat()
    replacement = path.with_name(".best.safetensors.tmp")
    replacement.write_bytes(b"b" * 100)  # same size, same mtime: only the inode and ctime tell
    os.replace(replacement, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fresh.current_sha256(run, "best") == sha256_file(path) != cache["best"]["sha256"]
    monkeypatch.setattr(fresh, "atomic_write_text", lambda *a: (_ for _ in ()).throw(OSError(30, "read-only")))
    path.write_bytes(b"c" * 100)
    assert fresh.current_sha256(run, "best") == sha256_file(path)  # an unwritable cache is no error
    assert fresh.current_sha256(run, "last") is None


def test_grid_takes_each_runs_latest_evaluation_and_marks_stale_cells(tmp_path, duvae):
    from duvae_cli.viz.grid import grid_values

    fresh_run, stale_run = _hand_run(tmp_path, "run-a"), _hand_run(tmp_path, "run-b", seed=2)
    now = sha256_file(fresh_run / "checkpoints" / "best.safetensors")
    _metrics_csv(fresh_run / "metrics.csv", [_row(fresh_run, 10, 48, 1.0, now, "mi"),
                                             _row(fresh_run, 20, 48, 3.0, now, "mi")])
    _metrics_csv(stale_run / "metrics.csv", [_row(stale_run, 20, 48, 5.0, "0" * 64, "mi")])
    config = json.loads((stale_run / "config.json").read_text())
    (stale_run / "config.json").write_text(json.dumps({**config, "gamma": 0.6}))
    values = grid_values([fresh_run, stale_run], "mi")
    assert values["mean"].tolist() == [[3.0], [5.0]]  # K=20 is fresh's latest: no mean over K
    assert values["stale"] == {(1, 0)} and "stale" in values["note"]
    assert "run-b" in values["note"] and "run-a" not in values["note"]
    result = duvae("visualize", fresh_run, stale_run, "--kind", "grid", "--out", tmp_path / "g.png", "--quiet")
    assert result.code == 0 and result.stderr.count("\n") == 1 and "stale" in result.stderr


def test_the_python_api_exposes_the_table_and_its_freshness(tmp_path):
    import duvae_cli

    run = _hand_run(tmp_path, "r")
    _metrics_csv(run / "metrics.csv", [_row(run, 10, 48, 1.0, "0" * 64)])
    table = duvae_cli.build_report([run], ("iw_nll",))
    assert isinstance(table, duvae_cli.ReportTable) and table.current is False
    assert table.rows[0].stale == "yes" and f"duvae evaluate {run} " in table.freshness_note()
    assert "stale" in duvae_cli.format_table(table, "csv").splitlines()[0]


# --- a run is checked against itself (item 6) ---------------------------------------------------

def _data(run: Path) -> str:
    return json.loads((run / "manifest.json").read_text())["data_path"]


def _edit_config(run: Path, **changes) -> None:
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **changes}))


@pytest.mark.parametrize("field, value", [("model", "vae"), ("dataset", "yelp"), ("latent_dim", 3)])
def test_an_edited_config_json_is_refused_wherever_the_run_is_loaded(duvae, run, tmp_path, field, value):
    old = json.loads((run / "config.json").read_text())[field]
    _edit_config(run, **{field: value})
    before = sorted(p.name for p in run.iterdir())
    for args in (["evaluate", run, "--iw-samples", 2], ["classify", run, "--labels", 10],
                 ["encode", run, _data(run), "--out", tmp_path / "codes.npy"], ["generate", run, "--sample", 2],
                 ["visualize", run, "--kind", "latent"], ["train", "--resume", run, "--epochs", 2]):
        result = duvae(*args)
        assert result.code == 1 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert f"{field} is {value!r}" in result.stderr and f"{field} {old!r}" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == before and not (tmp_path / "codes.npy").exists()
    with pytest.raises(Exception, match=f"{field} is"):
        import duvae_cli

        duvae_cli.load(run, device="cpu")


def test_fields_that_resume_may_change_are_not_compared(duvae, run):
    _edit_config(run, epochs=7, device="cpu")
    assert duvae("evaluate", run, "--iw-samples", 2, "--quiet").code == 0


def test_a_checkpoint_with_nan_weights_is_refused(duvae, run, tmp_path):
    path = run / "checkpoints" / "best.safetensors"
    payload = load_checkpoint(path)
    name = sorted(k for k, v in payload["model"].items() if v.is_floating_point())[3]
    payload["model"][name][...] = float("nan")
    save_checkpoint(path, payload)
    for args in (["evaluate", run, "--iw-samples", 2], ["encode", run, _data(run), "--out", tmp_path / "c.npy"]):
        result = duvae(*args)
        assert result.code == 1 and result.stderr.count("\n") == 1
        assert str(path) in result.stderr and f"tensor {name} " in result.stderr
    assert not (run / "metrics.csv").exists() and not (tmp_path / "c.npy").exists()


def test_a_non_finite_metric_is_stored_empty_with_a_note(duvae, run):
    """One example: the variance behind AU is undefined (N - 1 = 0), so AU is NaN, not 0."""
    result = duvae("evaluate", run, "--iw-samples", 2, "--examples", 1, "--json")
    assert result.code == 0 and "au not finite" in result.stderr
    assert json.loads(result.stdout)["metrics"]["au"]["value"] is None
    rows = {r["metric"]: r for r in read_rows(run / "metrics.csv")}
    assert rows["au"]["value"] == "" and rows["au"]["note"] == "not finite (nan)"
    assert rows["iw_nll"]["value"] != "" and rows["iw_nll"]["note"] == ""
    with h5py.File(run / "metrics.h5", "r") as f:
        [group] = [f["test"][name] for name in f["test"]]
        assert "metric_au" not in group.attrs and json.loads(group.attrs["non_finite_metrics"]) == ["au"]
        assert "metric_iw_nll" in group.attrs
    table = duvae("report", run, "--format", "csv", "--metrics", "iw_nll,au")
    [row] = list(csv.DictReader(io.StringIO(table.stdout)))
    assert row["AU_mean"] == "" and row["AU_n"] == "0" and row["NLL_n"] == "1"


def test_the_api_doc_block_runs_and_reports_freshness(duvae, run, capsys):
    """docs/api.md's "Tables across runs" block, on an evaluated run, before and after training on."""
    import re

    doc = Path(__file__).resolve().parents[1] / "docs" / "api.md"
    [block] = [b for b in re.findall(r"```python\n(.*?)\n```", doc.read_text(encoding="utf-8"), flags=re.S)
               if "build_report(" in b]
    block = re.sub(r"^RUNS = .*$", "", block, flags=re.M)  # the test's runs instead of the page's
    assert duvae("evaluate", run, "--checkpoint", "last", "--iw-samples", 3, "--quiet").code == 0
    exec(compile(block.replace('checkpoint="best"', 'checkpoint="last"'), str(doc), "exec"), {"RUNS": [run]})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("du gamma=") and f" 3 48 ['{run.name}'] no " in out[0]  # K, examples, runs, stale
    assert duvae("train", "--resume", run, "--epochs", "2", "--quiet").code == 0
    exec(compile(block.replace('checkpoint="best"', 'checkpoint="last"'), str(doc), "exec"), {"RUNS": [run]})
    out = capsys.readouterr().out.splitlines()
    assert " yes " in out[0] and out[1].startswith("stale numbers") and "stale" in out[2]
