"""Cyclical KL annealing (Fu et al. 2019) and `--train-examples` (issue 31): the schedule's values at
cycle starts, at the ratio R and at cycle ends; linear annealing unchanged; the first N examples."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toyruns import make_toy_data, toy_sets

from duvae_cli.data.store import ImageSplit, TextSplit
from duvae_cli.data.subset import first_examples
from duvae_cli.errors import UsageError
from duvae_cli.config import resolve_config
from duvae_cli.train.schedule import cyclical_weight, kl_weight_at


def test_cyclical_weight_at_cycle_starts_ramp_and_ends():
    """T = 100, M = 4, R = 0.5: cycles of 25 steps, 0.08 per step from 0 to 0.96, then 1 held."""
    weights = [cyclical_weight(t, 100, 4, 0.5, 0.0) for t in range(100)]
    for start in (0, 25, 50, 75):
        assert weights[start] == 0.0  # every cycle starts at kl_start exactly
        assert weights[start: start + 13] == pytest.approx([0.08 * i for i in range(13)], abs=1e-12)
        assert weights[start + 13: start + 25] == [1.0] * 12  # reached at i = R P = 12.5, held to the end
    assert [weights[t] for t in (24, 49, 74, 99)] == [1.0] * 4  # every cycle ends at 1


def test_cyclical_weight_from_kl_start():
    weights = [cyclical_weight(t, 100, 4, 0.5, 0.1) for t in (0, 1, 12, 13, 25)]
    assert weights == pytest.approx([0.1, 0.172, 0.964, 1.0, 0.1], abs=1e-12)


def test_cycles_start_at_floor_of_c_times_the_period():
    """T = 103, M = 4: P = 25.75, so cycles start at steps 0, 25, 51, 77; R P = 12.875."""
    weights = [cyclical_weight(t, 103, 4, 0.5, 0.0) for t in range(103)]
    assert [t for t in range(103) if weights[t] == 0.0] == [0, 25, 51, 77]
    assert weights[50] == 1.0 and weights[76] == 1.0 and weights[102] == 1.0
    assert weights[26] == pytest.approx(1 / 12.875) and weights[63] == pytest.approx(12 / 12.875)


def test_ratio_one_rises_over_the_whole_cycle_and_kl_start_one_is_constant():
    weights = [cyclical_weight(t, 37, 2, 1.0, 0.0) for t in range(37)]  # P = 18.5: starts 0 and 18
    assert weights[18] == 0.0 and weights[17] == pytest.approx(17 / 18.5) and max(weights) < 1.0
    assert {cyclical_weight(t, 37, 2, 0.5, 1.0) for t in range(37)} == {1.0}


def test_kl_weight_at_uses_the_planned_steps_of_the_run():
    config = resolve_config("synthetic", "vae", dict(anneal="cyclical", cycles=4, cycle_ratio=0.5, epochs=4,
                                                    kl_start=0.0))
    weights = [kl_weight_at(config, t, steps_per_epoch=25) for t in range(100)]
    assert weights == [cyclical_weight(t, 100, 4, 0.5, 0.0) for t in range(100)]


@pytest.mark.parametrize("kl_start, warm_up, per_epoch", [(0.0, 10.0, 7), (0.1, 2.5, 13), (0.0, 0.0, 5),
                                                          (1.0, 10.0, 5)])
def test_linear_schedule_is_unchanged(kl_start, warm_up, per_epoch):
    """`--anneal linear` (the default) is He et al.'s increment-before-use warm-up, bit for bit."""
    config = resolve_config("synthetic", "vae", dict(kl_start=kl_start, warm_up=warm_up))
    assert config.anneal == "linear"
    for step in range(0, 200, 3):
        if warm_up <= 0 or kl_start >= 1:
            expected = 1.0
        else:
            expected = min(1.0, kl_start + (1.0 - kl_start) / (warm_up * per_epoch) * (step + 1))
        assert kl_weight_at(config, step, per_epoch) == expected


@pytest.mark.parametrize("flags, message", [
    (["--anneal", "cyclical", "--warm-up", "3"], "--warm-up: the cyclical schedule does not use it"),
    (["--cycles", "3"], "--cycles: only the cyclical schedule uses it"),
    (["--cycle-ratio", "0.3"], "--cycle-ratio: only the cyclical schedule uses it"),
    (["--anneal", "cyclical", "--cycle-ratio", "0"], "--cycle-ratio 0.0: must be in (0, 1]"),
    (["--anneal", "cosine"], "--anneal 'cosine': choose linear or cyclical"),
    (["--train-examples", "-1"], "--train-examples -1"),
])
def test_schedule_flags_the_run_would_ignore_are_usage_errors(duvae, tmp_path, flags, message):
    result = duvae("train", *flags, "--run-dir", tmp_path / "run", "--quiet")
    assert result.code == 2 and result.stderr.count("\n") == 1, result
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_cyclical_run_records_its_schedule(duvae, tmp_path):
    """The done-when of issue 31 on the toy dataset: config.json records anneal and cycles, and the
    history's kl_weight is the last step's weight (1 with R = 0.5)."""
    root = make_toy_data(tmp_path / "data")
    result = duvae("train", "--dataset", "toy", "--model", "vae", "--anneal", "cyclical", "--cycles", "2",
                   "--epochs", "2", *toy_sets(root), "--run-dir", tmp_path / "run", "--quiet")
    assert result.code == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["anneal"], config["cycles"], config["cycle_ratio"]) == ("cyclical", 2, 0.5)
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    column = history[0].split(",").index("kl_weight")
    assert [float(row.split(",")[column]) for row in history[1:]] == [1.0, 1.0]


# ----------------------------------------------------------------------------------- train_examples

def test_first_examples_of_a_text_split():
    offsets = np.array([0, 2, 5, 6, 9], dtype=np.int64)
    split = TextSplit(tokens=np.arange(9, dtype=np.int32), offsets=offsets, labels=np.array([3, 1, 4, 1]))
    head = first_examples(split, 2)
    assert len(head) == 2 and head.labels.tolist() == [3, 1]
    assert [head.sentence(i).tolist() for i in range(2)] == [[0, 1], [2, 3, 4]]
    assert first_examples(split, 0) is split
    with pytest.raises(UsageError, match="--train-examples 5: the train split has only 4 examples"):
        first_examples(split, 5)


def test_first_examples_of_an_image_split():
    images = np.arange(5 * 4, dtype=np.uint8).reshape(5, 2, 2)
    split = ImageSplit(images, False, labels=np.arange(5), alphabet=np.arange(5) % 2, character=np.arange(5))
    head = first_examples(split, 3)
    assert np.array_equal(head.images, images[:3]) and head.binarized is False
    assert head.labels.tolist() == [0, 1, 2] and head.alphabet.tolist() == [0, 1, 0]


def test_a_run_trains_on_the_first_examples_only(duvae, tmp_path):
    """48 toy sentences, batches of 16: all of them are 3 steps per epoch, the first 20 are 2 (a last
    batch of 4 stays a batch); config.json and the manifest record it."""
    root = make_toy_data(tmp_path / "data")
    result = duvae("train", "--dataset", "toy", "--model", "vae", "--epochs", "2", "--train-examples", "20",
                   *toy_sets(root), "--run-dir", tmp_path / "run", "--quiet")
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train_examples"] == 20
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["steps"] == 4
