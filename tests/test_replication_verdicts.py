"""The replication's decision rule (benchmarks/verdicts.py, docs/replication.md) on fabricated numbers:
differences paired by seed, SE = sd / sqrt(n) with the n - 1 standard deviation, the three outcomes,
the margin of a ">=" claim, and how a hypothesis combines its claims."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "verdicts.py"
_SPEC = importlib.util.spec_from_file_location("replication_verdicts", _PATH)
V = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = V  # dataclasses look their module up
_SPEC.loader.exec_module(V)


def test_differences_are_paired_by_seed_not_by_position():
    # seed 2 is missing in b: it drops out; seed order of the dicts does not matter
    p = V.paired({3: 70.0, 1: 80.0, 2: 99.0}, {1: 75.0, 3: 68.0})
    assert p.n == 2 and p.differences == (5.0, 2.0)
    assert p.mean == pytest.approx(3.5)
    assert p.sd == pytest.approx(math.sqrt(((5 - 3.5) ** 2 + (2 - 3.5) ** 2) / 1))  # n - 1 denominator
    assert p.se == pytest.approx(p.sd / math.sqrt(2))


def test_pairing_removes_the_seed_effect_that_unpaired_numbers_carry():
    # seeds differ by a lot (60 / 70 / 80) but A beats B by 1.0 +- 0.1 in every seed
    a, b = {1: 61.0, 2: 71.1, 3: 80.9}, {1: 60.0, 2: 70.0, 3: 80.0}
    p = V.paired(a, b)
    assert p.differences == pytest.approx((1.0, 1.1, 0.9))
    assert p.se == pytest.approx(0.1 / math.sqrt(3))
    assert V.verdict(p) == V.HOLDS


@pytest.mark.parametrize("a, b, expected", [
    ({1: 3.0, 2: 3.2, 3: 3.1}, {1: 2.0, 2: 2.1, 3: 2.2}, V.HOLDS),  # d = 1.0, 1.1, 0.9: mean far above 2 SE
    ({1: 2.0, 2: 2.1, 3: 2.2}, {1: 3.0, 2: 3.2, 3: 3.1}, V.FAILS),  # the same, reversed
    ({1: 3.0, 2: 1.0, 3: 2.6}, {1: 2.0, 2: 2.0, 3: 2.0}, V.UNDECIDED),  # d = 1, -1, 0.6: mean 0.2, SE 0.61
    ({1: 5.0}, {1: 1.0}, V.UNDECIDED),  # one seed: no SE, never decided
    ({1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.0}, V.UNDECIDED),  # identical: d = 0, SE = 0
])
def test_the_three_outcomes_of_a_strict_claim(a, b, expected):
    assert V.verdict(V.paired(a, b)) == expected


def test_the_boundary_is_twice_the_standard_error():
    # d = m - s, m, m + s: sd = s, SE = s / sqrt(3); holds iff m > 2 s / sqrt(3)
    s = 1.0
    just_below, just_above = 2 * s / math.sqrt(3) - 1e-6, 2 * s / math.sqrt(3) + 1e-6
    for m, expected in ((just_above, V.HOLDS), (just_below, V.UNDECIDED), (-just_above, V.FAILS),
                        (-just_below, V.UNDECIDED)):
        p = V.paired({1: m - s, 2: m, 3: m + s}, {1: 0.0, 2: 0.0, 3: 0.0})
        assert p.se == pytest.approx(s / math.sqrt(3))
        assert V.verdict(p) == expected, m


def test_a_margin_claim_tolerates_a_small_loss_but_not_a_large_one():
    b = {1: 40.0, 2: 41.0, 3: 42.0}
    slightly_worse = {1: 39.8, 2: 40.7, 3: 41.8}  # d = -0.2, -0.3, -0.2: within 1 point
    assert V.verdict(V.paired(slightly_worse, b)) == V.FAILS  # strictly, DU is worse
    assert V.verdict(V.paired(slightly_worse, b), margin=1.0) == V.HOLDS
    much_worse = {1: 37.0, 2: 38.2, 3: 38.9}  # d = -3.0, -2.8, -3.1
    assert V.verdict(V.paired(much_worse, b), margin=1.0) == V.FAILS
    noisy = {1: 44.0, 2: 37.0, 3: 42.0}  # d = 4, -4, 0: SE 2.3
    assert V.verdict(V.paired(noisy, b), margin=1.0) == V.UNDECIDED


@pytest.mark.parametrize("parts, expected", [
    ([V.HOLDS, V.HOLDS], V.HOLDS),
    ([V.HOLDS, V.UNDECIDED], V.UNDECIDED),
    ([V.HOLDS, V.FAILS], V.FAILS),
    ([V.UNDECIDED, V.FAILS], V.FAILS),
    ([], V.UNDECIDED),
])
def test_a_hypothesis_holds_only_when_every_claim_holds(parts, expected):
    assert V.combine(parts) == expected


def test_claims_table_reads_the_per_run_frame_by_part_model_and_seed():
    frame = pd.DataFrame([
        {"part": "short-yelp", "model": m, "seed": s, "acc@100": acc, "mi": mi}
        for m, accs, mis in (("du", (85.0, 86.0, 87.0), (3.5, 3.6, 3.4)), ("bn", (84.0, 84.5, 85.0), (3.3, 3.2, 3.3)),
                             ("vae", (60.5, 60.5, 60.5), (0.0, 0.0, 0.0)))
        for s, acc, mi in zip((1, 2, 3), accs, mis)])
    text = V.claims_markdown(frame)
    h1 = text.split("### H2")[0]
    assert "**holds**" in h1.splitlines()[0]  # d(bn) = 1.0, 1.5, 2.0; d(vae) = 24.5, 25.5, 26.5
    assert "+1.00, +1.50, +2.00" in h1
    h2 = text.split("### H2")[1].split("### H3")[0]
    assert "+0.20, +0.40, +0.10" in h2 and "**holds**" in h2.splitlines()[0]
    h3 = text.split("### H3")[1]
    assert "**cannot be told**" in h3.splitlines()[0]  # no Omniglot runs: n = 0


def test_run_table_has_one_row_per_run_with_the_values_the_model_table_averages():
    frame = pd.DataFrame([
        {"part": "omniglot", "model": m, "seed": s, "mi": mi, "acc@5": acc}
        for m, runs in (("du", ((2, 5.25, 40.5), (1, 5.0, 39.0))), ("bn", ((1, 4.0, 38.0),)))
        for s, mi, acc in runs])
    lines = V.run_table(frame, "omniglot", ["vae", "du", "bn"]).splitlines()[2:]
    assert [line.split(" | ")[:2] for line in lines] == [["| du", "1"], ["| du", "2"], ["| bn", "1"]]
    assert "| 5.00 |" in lines[0] and "| 39.00 |" in lines[0] and "| 40.50 |" in lines[1]
    model = V.model_table(frame, "omniglot", ["du"]).splitlines()[2]
    assert "5.12 +- 0.18" in model and "39.8 +- 1.1" in model  # the mean and sd of the rows above


def test_machine_time_counts_overlapping_steps_once_and_gaps_not_at_all():
    # two jobs side by side for an hour, a 30-minute gap, then one job for 15 minutes
    starts = pd.Series(["2026-12-02T00:00:00Z", "2026-12-02T00:10:00Z", "2026-12-02T01:40:00Z"])
    seconds = pd.Series([3600.0, 3000.0, 900.0])
    assert V.busy_hours(starts, seconds) == pytest.approx(1.0 + 0.25)
    # a step nested inside another adds nothing; the process time would count it
    assert V.busy_hours(pd.Series(["2026-12-02T00:00:00Z", "2026-12-02T00:05:00Z"]),
                        pd.Series([600.0, 60.0])) == pytest.approx(600 / 3600)


# ----------------------------------------------------------- verdicts from a committed runs.csv ---
# `replicate.py verdicts` commits each comparison's per-run outputs (docs/replication/<comparison>/
# runs.csv) and computes every table and verdict from that file; these tests do the same.

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "replication" / "runs.csv"  # fabricated numbers (README beside it)
_RSPEC = importlib.util.spec_from_file_location("replication_replicate", REPO / "benchmarks" / "replicate.py")
R = importlib.util.module_from_spec(_RSPEC)
sys.modules[_RSPEC.name] = R
_RSPEC.loader.exec_module(R)


def test_verdicts_are_recomputed_from_a_committed_runs_csv(tmp_path, capsys):
    frame = V.read_runs(FIXTURE)
    assert V.hypothesis_verdicts(frame) == {"H1": V.HOLDS, "H2": V.FAILS, "H3": V.UNDECIDED}
    h2 = V.claims_markdown(frame).split("### H2")[1].split("### H3")[0]
    assert "-0.50, -0.60, -0.40" in h2 and "**does not hold**" in h2.splitlines()[0]

    record = tmp_path / "record"  # `verdicts` with no finished runs in WORK: the recorded file alone
    (record / "fixture").mkdir(parents=True)
    (record / "fixture" / "runs.csv").write_bytes(FIXTURE.read_bytes())
    assert R.main(["verdicts", "--work", str(tmp_path / "work"), "--record", str(record),
                   "--comparison", "fixture"]) == 0
    written = (record / "fixture" / "verdicts.md").read_text()
    assert written == R.verdicts_markdown(frame, record / "fixture" / "runs.csv")
    for name, expected in (("H1", V.HOLDS), ("H2", V.FAILS), ("H3", V.UNDECIDED)):
        assert f"### {name}: " in written and written.split(f"### {name}: ")[1].splitlines()[0].endswith(
            f"— **{expected}**")
    assert (record / "fixture" / "runs.csv").read_bytes() == FIXTURE.read_bytes()  # read, not rewritten


COMMITTED = sorted((REPO / "docs" / "replication").glob("*/runs.csv"))


@pytest.mark.parametrize("runs_csv", COMMITTED, ids=[p.parent.name for p in COMMITTED])
def test_every_committed_comparison_recomputes_to_its_verdicts(runs_csv):
    """docs/replication/<comparison>/verdicts.md is what its runs.csv gives, byte for byte."""
    assert (runs_csv.parent / "verdicts.md").read_text() == R.verdicts_markdown(V.read_runs(runs_csv), runs_csv)


def _fake_run(run: Path, best: bytes, rows: list[tuple]) -> None:
    """A finished run directory as replicate.py leaves it, with metrics.csv rows (sha, metric, K, value)."""
    import json

    (run / "checkpoints").mkdir(parents=True)
    (run / "replicate").mkdir()
    (run / "replicate" / "done").write_text("ok\n")
    (run / "checkpoints" / "best.safetensors").write_bytes(best)
    (run / "config.json").write_text(json.dumps({"model": "du", "gamma": 0.5}))
    (run / "manifest.json").write_text(json.dumps({"git_sha": "abc123", "data_sha256": "old"}))
    (run / "binding.json").write_text(json.dumps({"dataset_sha256": "d" * 64, "splits": {"test": "t" * 64}}))
    pd.DataFrame([{"run": run.name, "split": "test", "metric": m, "value": v, "n_samples": k, "checkpoint": "best",
                   "checkpoint_sha256": sha} for sha, m, k, v in rows]).to_csv(run / "metrics.csv", index=False)
    pd.DataFrame([{"epoch": 1, "lr": 1.0, "val_loss": 3.0, "seconds": 60.0}]).to_csv(run / "history.csv", index=False)


def test_runs_csv_keeps_each_runs_provenance_and_only_its_current_checkpoints_numbers(tmp_path):
    import hashlib

    best = b"the weights now"
    current, older = hashlib.sha256(best).hexdigest(), "0" * 64
    _fake_run(tmp_path / "runs" / "short-yelp" / "du-s1", best,
              [(older, "mi", 1, 9.0), (current, "mi", 1, 3.25), (current, "iw_nll", 500, 37.5),
               (older, "kl", 1, 7.0)])  # kl: only of an earlier best.pt, so not this run's
    frame = V.collect(tmp_path, {"short-yelp": 500})
    row = frame.iloc[0]
    assert row["checkpoint_sha256"] == current and row["git_sha"] == "abc123"
    assert row["dataset_sha256"] == "d" * 64 and row["split_sha256_test"] == "t" * 64
    assert row["mi"] == 3.25 and row["mi@K1"] == 3.25 and row["iw_nll@K500"] == 37.5 and "kl" not in frame
    assert '"gamma": 0.5' in row["config"]
    V.write_runs(frame, tmp_path / "record" / "runs.csv")
    again = V.read_runs(tmp_path / "record" / "runs.csv")
    pd.testing.assert_frame_equal(again, frame[again.columns], check_dtype=False)


def test_the_beyond_comparison_shows_its_own_hypotheses_only():
    """A frame of the "beyond the paper" parts gets B1-B4 (issue #31), decided by the same rule; the
    paper's H1-H3 stay on their own comparison's page."""
    rows = [{"part": "beyond-synthetic", "model": m, "seed": s, "mi": mi, "acc@100": acc}
            for m, mis, accs in (("lidvae", (1.2, 1.3, 1.25), (70, 71, 72)), ("vae", (0.0, 0.01, 0.0), (40, 41, 40)),
                                 ("du", (1.4, 1.5, 1.45), (80, 82, 81)), ("cyc", (0.1, 0.0, 0.05), (45, 44, 46)))
            for s, mi, acc in zip((1, 2, 3), mis, accs)]
    frame = pd.DataFrame(rows)
    assert V.hypothesis_verdicts(frame) == {"B1": V.HOLDS, "B2": V.HOLDS, "B3": V.UNDECIDED, "B4": V.UNDECIDED}
    text = V.claims_markdown(frame)
    assert "### B1" in text and "### H1" not in text and "Strict reading" not in text
