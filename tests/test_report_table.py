"""`duvae report`: hand-made run directories aggregate into the right means and standard deviations."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.tables import build_report, format_table

HEADER = ("run,dataset,model,split,metric,value,estimator,n_samples,seed,checkpoint,checkpoint_sha256,"
          "split_sha256,dataset_sha256,examples,mi_estimator,au_threshold,precision,note\n")
PROBE_HEADER = "run,dataset,model,split,metric,value,estimator,n_samples,seed,checkpoint,checkpoint_sha256"
SETTINGS = "s1,d1,2000,whole,0.01,fp32,"  # split and dataset fingerprints, examples, MI, AU threshold, precision, note


def _run(root: Path, name: str, config: dict, metrics: dict[str, float], accuracies: dict[int, list[float]] = {}):
    """A run directory with config.json, metrics.csv (test rows of the best checkpoint plus decoys:
    a valid row and a last-checkpoint row) and probe.csv (one row per repeat)."""
    run = root / name
    run.mkdir(parents=True)
    base = {"dataset": "yelp", "model": "du", "gamma": 0.5, "p": 0.8, "beta": None, "latent_dim": 32,
            "seed": 1, "device": "auto"}
    (run / "config.json").write_text(json.dumps({**base, **config}))
    lines = [f"{name},yelp,du,test,{m},{v},est,500,0,best,abc,{SETTINGS}\n" for m, v in metrics.items()]
    lines += [f"{name},yelp,du,valid,{m},1000,est,500,0,best,abc,{SETTINGS}\n" for m in metrics]
    lines += [f"{name},yelp,du,test,{m},-1000,est,500,0,last,def,{SETTINGS}\n" for m in metrics]
    (run / "metrics.csv").write_text(HEADER + "".join(lines))
    if accuracies:
        rows = [f"{name},yelp,du,test,accuracy,{a},linear_probe,100,{r},best,abc,{n},{r},official,{n}\n"
                for n, accs in accuracies.items() for r, a in enumerate(accs)]
        (run / "probe.csv").write_text(PROBE_HEADER + ",labels,repeat,subset,n_train\n" + "".join(rows))
    return run


@pytest.fixture
def runs(tmp_path):
    return [
        _run(tmp_path, "du-s1", {"seed": 1}, {"iw_nll": 100.0, "kl": 5.0, "mi": 2.0, "au": 10},
             {100: [0.6, 0.7], 500: [0.8]}),
        _run(tmp_path, "du-s2", {"seed": 2, "device": "cpu"}, {"iw_nll": 102.0, "kl": 7.0, "mi": 3.0, "au": 12},
             {100: [0.9, 0.9]}),
        _run(tmp_path, "du-gamma", {"gamma": 0.6}, {"iw_nll": 90.0, "kl": 1.0, "mi": 1.0, "au": 4}),
        _run(tmp_path, "vae", {"model": "vae", "gamma": None, "p": None}, {"iw_nll": 95.0, "kl": 0.1, "mi": 0.0, "au": 0}),
    ]


def _row(table, settings_part: str, model: str = "du"):
    [row] = [r for r in table.rows if r.model == model and settings_part in r.settings]
    return row


def test_seeds_of_one_model_form_one_row_with_mean_and_std(runs):
    table = build_report(runs)
    assert [c.header for c in table.columns] == ["NLL", "KL", "MI", "AU", "acc@100", "acc@500"]
    row = _row(table, "gamma=0.5")
    assert sorted(row.runs) == ["du-s1", "du-s2"]
    nll = row.cells[("metric", "iw_nll", "est")]
    assert (nll.mean, nll.std, nll.n) == (101.0, pytest.approx(np.sqrt(2.0)), 2)
    acc = row.cells[("accuracy", 100)]  # per-run mean over repeats first: 0.65 and 0.9
    assert acc.mean == pytest.approx(0.775) and acc.std == pytest.approx(np.std([0.65, 0.9], ddof=1))
    only = row.cells[("accuracy", 500)]
    assert (only.mean, only.std, only.n) == (0.8, None, 1)


def test_hyper_parameters_split_rows_and_are_named(runs):
    table = build_report(runs)
    assert len(table.rows) == 3
    assert _row(table, "gamma=0.6").cells[("metric", "kl", "est")].mean == 1.0
    assert _row(table, "", model="vae").settings == ""


def test_markdown_latex_and_csv_show_the_same_numbers(runs):
    table = build_report(runs)
    markdown = format_table(table, "markdown")
    assert "| yelp | du | gamma=0.5, p=0.8 | 500 | 2000 | 2 | unknown | 101.00 ± 1.41 | 6.00 ± 1.41 | 2.50 ± 0.71 " \
        "| 11.0 ± 1.4 | 77.5 ± 17.7 | 80.0 |" in markdown  # unknown: these runs have no checkpoint file
    latex = format_table(table, "latex")
    assert r"101.00 $\pm$ 1.41" in latex and r"acc@100 (\%)" in latex and latex.count(r"\\") == 4
    rows = list(csv.DictReader(io.StringIO(format_table(table, "csv"))))
    du = [r for r in rows if r["settings"] == "gamma=0.5, p=0.8"][0]
    assert float(du["NLL_mean"]) == 101.0 and float(du["acc@100_mean"]) == pytest.approx(0.775)
    assert du["acc@500_std"] == "" and du["acc@500_n"] == "1"


def test_several_estimators_of_a_metric_get_their_own_columns(tmp_path):
    run = _run(tmp_path, "r", {}, {"mi": 2.0})
    with open(run / "metrics.csv", "a") as fh:
        fh.write("r,yelp,du,test,mi,1.5,per_batch,500,0,best,abc,s1,d1,2000,batch,0.01,fp32,\n")
    headers = [c.header for c in build_report([run], ("mi",)).columns]
    assert headers == ["MI [est]", "MI [per_batch]"]


def test_cli_writes_the_table_and_counts_a_symlinked_run_once(duvae, runs, tmp_path):
    os.symlink(runs[0], tmp_path / "latest")
    result = duvae("report", *runs, tmp_path / "latest", "--format", "csv")
    assert result.code == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 + 3
    out = tmp_path / "table.tex"
    assert duvae("report", *runs, "--format", "latex", "--out", out).code == 0
    assert out.read_text().startswith(r"\begin{tabular}")


def test_cli_failures_are_one_line(duvae, runs, tmp_path):
    (tmp_path / "empty").mkdir()
    result = duvae("report", tmp_path / "empty")
    assert result.code == 1 and "not a duvae run directory" in result.stderr
    (tmp_path / "figures").mkdir()
    (tmp_path / "report.md").write_text("# a sweep's report\n")
    result = duvae("report", *runs, tmp_path / "figures", tmp_path / "report.md", "--format", "csv")
    assert result.code == 0, result.stderr  # ROOT/* of a sweep: its other folders are skipped
    assert "skipped 2 path(s) that are not run directories" in result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 + 3
    result = duvae("report", runs[0], "--format", "html")
    assert result.code == 2 and "--format 'html'" in result.stderr
    bare = _run(tmp_path, "bare", {}, {})
    (bare / "metrics.csv").unlink()
    result = duvae("report", bare)
    assert result.code == 1 and "no run has metrics.csv or probe.csv" in result.stderr


def test_a_run_saved_before_a_config_field_existed_groups_with_runs_at_its_default(tmp_path):
    """An older config.json lacks newer fields; it ran as their defaults, so it is no separate row."""
    from duvae_cli.config.resolve import TrainConfig

    newest = TrainConfig(dataset="yelp", model="du", gamma=0.5, p=0.8).to_dict()
    old = {k: v for k, v in newest.items() if k not in ("flow", "flow_depth", "bn_eps")}
    runs = [_run(tmp_path, "du-new", {**newest, "seed": 1}, {"iw_nll": 100.0}),
            _run(tmp_path, "du-old", {**old, "seed": 2}, {"iw_nll": 102.0}),
            _run(tmp_path, "du-eps", {**newest, "seed": 3, "bn_eps": 1e-8}, {"iw_nll": 90.0})]
    table = build_report(runs)
    assert sorted(sorted(r.runs) for r in table.rows) == [["du-eps"], ["du-new", "du-old"]]
