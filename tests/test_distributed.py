"""Data-parallel training and sharded evaluation (docs/distributed.md) with 2 gloo processes on the CPU.

One spawn of 2 workers (module fixture `ddp_root`) trains `vae` and `du` with DDP, interrupts and
resumes a run, evaluates a run sharded, runs a BatchNorm2d over the global batch and tries two
rejected configurations; the tests compare what it wrote with one process doing the same. The data is the synthetic corpus (design.md §2) at 90/48/48
sentences. A global batch of 15 splits into shards of 8 and 7 (uneven: the loss normalisation
matters), and the models see no dropout, so DDP must reproduce one process to float rounding.

The equivalence runs train in float64: in float32 the two agree to rounding at the first step, but
DU's BatchNorm backward subtracts nearly equal terms (its float32 gradient is ~2e-4 relative from
the float64 one in one process too) and SGD at lr 1 amplifies that over the steps, so a float32
comparison would test the conditioning of the model rather than the data-parallel algebra.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from interrupting import Interrupt, StopAfter, assert_same_run

from duvae_cli.prepare import synthetic
from duvae_cli.prepare.prepare import PrepareOptions, prepare_dataset
from duvae_cli.errors import UsageError
from duvae_cli.metrics import EvalOptions, evaluate_run
from duvae_cli.runtime import distributed
from duvae_cli.data.batching import plan_batches
from duvae_cli.config.resolve import resolve_config
from duvae_cli.train.global_bn import convert_batch_norm
from duvae_cli.train.session import resume_run, start_run

pytestmark = pytest.mark.distributed
WORLD = 2
MODELS = ("vae", "du")
EVAL = EvalOptions(iw_samples=16, batch_size=8)
TIMEOUT = 150  # seconds for the whole spawn; a hung collective fails the test instead of CI


def _config(root: Path, model: str, **overrides):
    flags = dict(embed_dim=8, hidden_dim=16, epochs=2, batch_size=15, dropout_in=0.0, dropout_out=0.0,
                 kl_start=1.0, warm_up=0.0, eval_batch_size=48, device="cpu", data_root=str(root / "data"))
    if model == "du":
        flags["p"] = 1.0  # no variance dropout: the only noise is eps, shared across ranks
    return resolve_config("synthetic", model, {**flags, **overrides})


def _resume_config(root: Path):
    """Dropout everywhere (decoder 0.5, DU keep 0.8): per-rank streams that a resume must restore."""
    return _config(root, "du", dropout_in=0.5, dropout_out=0.5, p=0.8, checkpoint_every=5)


# --- what the 2 workers do -----------------------------------------------------------------------

@contextlib.contextmanager
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _job_train(root: Path) -> None:
    with _float64():
        for model in MODELS:
            start_run(_config(root, model), run_dir=root / "ddp" / model)


def _job_resume(root: Path) -> None:
    config = _resume_config(root)
    start_run(config, run_dir=root / "ddp-resume" / "whole")
    with pytest.raises(Interrupt):
        start_run(config, run_dir=root / "ddp-resume" / "parts", reporter=StopAfter(8))  # last.pt: step 5
    resume_run(root / "ddp-resume" / "parts")


def _job_evaluate(root: Path) -> None:
    evaluate_run(root / "ddp" / "du", "test", "last", EVAL, device="cpu")


def _job_reject(root: Path) -> None:
    for name, overrides in (("strategy", dict(strategy="aggressive")), ("batch", dict(batch_size=3))):
        try:
            start_run(_config(root, "vae", **overrides), run_dir=root / "rejected")
        except UsageError as exc:
            if distributed.world().is_main:
                (root / f"rejected-{name}.txt").write_text(str(exc))


def _images(n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """A (7, 3, 4, 4) float64 batch with a small spread (the ill-conditioned case) and loss weights."""
    generator = torch.Generator().manual_seed(0)
    x = 0.5 + 0.05 * torch.randn(n, 3, 4, 4, generator=generator, dtype=torch.float64)
    return x, torch.randn(n, 3, 4, 4, generator=generator, dtype=torch.float64)


def _job_batch_norm_2d(root: Path) -> None:
    """GlobalBatchNorm on a BatchNorm2d (the image encoders' kind), shards of 4 and 3."""
    here = distributed.world()
    x, weights = _images()
    start, stop = distributed.shard_bounds(len(x), here)
    layer = convert_batch_norm(torch.nn.Sequential(torch.nn.BatchNorm2d(3).double()))[0]
    mine = x[start:stop].clone().requires_grad_()
    (layer(mine) * weights[start:stop]).pow(2).sum().backward()
    torch.save({"grad": mine.grad, "running_var": layer.running_var, "bias_grad": layer.bias.grad},
               root / f"bn2d-{here.rank}.pt")


JOBS = {"train": _job_train, "resume": _job_resume, "evaluate": _job_evaluate, "reject": _job_reject,
        "batch_norm_2d": _job_batch_norm_2d}


def _worker(rank: int, port: int, root: Path, jobs: tuple[str, ...]) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    try:
        for job in jobs:
            JOBS[job](root)
    finally:
        distributed.leave()  # together: see its docstring


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(root: Path, jobs: tuple[str, ...]) -> None:
    context = mp.spawn(_worker, args=(_free_port(), root, jobs), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} DDP workers did not finish within {TIMEOUT} s")


# --- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ddp_root(tmp_path_factory) -> Path:
    """The synthetic corpus, small, then one spawn of 2 workers running every job."""
    root = tmp_path_factory.mktemp("ddp")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "SyntheticConfig", functools.partial(synthetic.SyntheticConfig,
                                                                      sizes=(90, 48, 48)))
        prepare_dataset("synthetic", PrepareOptions(out=root / "data"))
    _spawn(root, tuple(JOBS))
    return root


@pytest.fixture(scope="module")
def single_runs(ddp_root) -> dict[str, Path]:
    with _float64():
        return {model: start_run(_config(ddp_root, model), run_dir=ddp_root / "single" / model)
                for model in MODELS}


def _model(run_dir: Path) -> dict:
    from duvae_cli.runs.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "checkpoints" / "last.safetensors")["model"]


def _history(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "history.csv").open()))


# --- tests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_ddp_training_equals_one_process_with_the_global_batch(model, ddp_root, single_runs):
    ddp, single = _model(ddp_root / "ddp" / model), _model(single_runs[model])
    assert ddp.keys() == single.keys()
    for name, value in single.items():  # parameters and the BN running statistics
        assert ddp[name].dtype == value.dtype
        torch.testing.assert_close(ddp[name], value, atol=1e-10, rtol=1e-8, msg=name)
    for row_ddp, row_single in zip(_history(ddp_root / "ddp" / model), _history(single_runs[model])):
        for column in ("train_loss", "train_kl", "val_loss", "val_mi", "pre_bn_var_mean"):
            if row_single[column] != "nan":
                assert float(row_ddp[column]) == pytest.approx(float(row_single[column]), rel=1e-9), column
    if model == "du":  # DU's rescaling (Algorithm 1) kept the RMS of the BN scales at gamma
        scales = ddp["regularizer.bn.bn.weight"]
        assert float(scales.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=1e-5)


def test_the_run_directory_is_that_of_one_process(ddp_root, single_runs):
    ddp, single = ddp_root / "ddp" / "vae", single_runs["vae"]  # (the du runs get evaluated)
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*"))  # noqa: E731
    assert files(ddp) == files(single) == ["binding.json", "checkpoints", "checkpoints/best.safetensors",
                                           "checkpoints/last.safetensors", "config.json", "history.csv", "manifest.json"]
    assert (ddp / "binding.json").read_text() == (single / "binding.json").read_text()  # every rank's data
    assert (ddp / "config.json").read_text() == (single / "config.json").read_text()
    manifests = [json.loads((d / "manifest.json").read_text()) for d in (ddp, single)]
    assert (manifests[0]["world_size"], manifests[1]["world_size"]) == (WORLD, 1)
    assert manifests[0].keys() == manifests[1].keys()
    assert [len(_history(d)) for d in (ddp, single)] == [2, 2]
    assert os.readlink(ddp.parent / "latest") == os.readlink(single.parent / "latest") == "du"  # the newest


def test_resume_under_ddp_continues_exactly(ddp_root):
    whole, parts = ddp_root / "ddp-resume" / "whole", ddp_root / "ddp-resume" / "parts"
    assert_same_run(whole, parts)  # dropout on: every rank's own stream was restored
    assert len(json.loads((parts / "manifest.json").read_text())["resumed_utc"]) == 1


def test_sharded_evaluation_equals_one_process(ddp_root, single_runs):
    run = ddp_root / "ddp" / "du"
    sharded = _read_metrics(run)  # written by rank 0 of the 2-process evaluation
    evaluate_run(run, "test", "last", EVAL, device="cpu")
    single = _read_metrics(run)
    for name in ("iw_nll", "elbo", "rec", "kl", "mean", "logvar", "z_sample"):
        np.testing.assert_allclose(sharded[name], single[name], rtol=1e-5, atol=1e-5, err_msg=name)
    for name in ("metric_iw_nll", "metric_mi", "metric_mpd", "metric_kl"):
        assert sharded[name] == pytest.approx(single[name], rel=1e-5, abs=1e-6), name
    assert sharded["metric_au"] == single["metric_au"]
    assert sharded["metric_n_examples"] == single["metric_n_examples"] == 48


def _read_metrics(run: Path) -> dict:
    with h5py.File(run / "metrics.h5", "r") as f:
        (group,) = [f[f"test/{name}"] for name in f["test"]]
        out = {name: group[name][()] for name in group if name != "per_dim"}
        out.update({k: v for k, v in group.attrs.items() if k.startswith("metric_")})
    return out


def test_ddp_usage_errors_come_before_the_run_directory(ddp_root):
    strategy, batch = ((ddp_root / f"rejected-{name}.txt").read_text() for name in ("strategy", "batch"))
    assert strategy.startswith("--strategy aggressive: torchrun training supports only the standard")
    assert batch == ("--batch-size 3: with 2 processes the global batch must be >= 4 (BatchNorm needs 2 "
                     "examples per process)")
    assert not (ddp_root / "rejected").exists()


def test_global_batch_norm_is_batch_norm_of_the_global_batch(ddp_root):
    x, weights = _images()
    layer = torch.nn.BatchNorm2d(3).double()
    x = x.clone().requires_grad_()
    (layer(x) * weights).pow(2).sum().backward()
    shards = [torch.load(ddp_root / f"bn2d-{rank}.pt") for rank in range(WORLD)]
    torch.testing.assert_close(torch.cat([s["grad"] for s in shards]), x.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(shards[0]["running_var"], layer.running_var, rtol=1e-12, atol=0)
    # the shift's gradient is each rank's own part; DDP's average x N = the whole batch's
    torch.testing.assert_close(sum(s["bias_grad"] for s in shards), layer.bias.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [4, 5, 15, 16, 33])
def test_shards_are_contiguous_balanced_and_cover_the_batch(n):
    shards = [distributed.shard(np.arange(n), distributed.World(rank, WORLD)) for rank in range(WORLD)]
    assert np.array_equal(np.concatenate(shards), np.arange(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_every_batch_of_the_plan_gives_each_rank_two_examples():
    here = distributed.World(0, 4)
    plan = plan_batches(np.full(50, 10), 16, np.random.default_rng(0), min_size=here.min_batch())
    assert sum(map(len, plan)) == 50 and min(map(len, plan)) >= 2 * here.size


def test_torchrun_cli_trains_and_only_rank_zero_prints(ddp_root, tmp_path):
    """`torchrun --standalone --nproc-per-node 2 -m duvae_cli train` end to end (torchrun's own module)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(WORLD),
               "-m", "duvae_cli", "train", "--dataset", "synthetic", "--model", "bn", "--epochs", "1",
               "--batch-size", "32", "--latent-dim", "2", "--device", "cpu", "--run-dir", str(tmp_path / "run"),
               "--set", "embed_dim=8", "--set", "hidden_dim=8", "--set", f"data_root={ddp_root / 'data'}",
               "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)  # one JSON document: rank 1 printed nothing
    assert summary["run_dir"] == str(tmp_path / "run") and summary["epochs_done"] == 1
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["world_size"] == WORLD
