"""Training on images: dynamic binarisation, every regularizer learns at the small size, resume is
bit-exact, the plateau rule of the image schedule, and the image presets."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from interrupting import assert_same_run, train_whole_and_resumed
from test_images_toyrun import write_toy_images

from duvae_cli.data.store import ImageSplit, load_dataset
from duvae_cli.errors import UsageError
from duvae_cli.methods import REGULARIZERS
from duvae_cli.data.batching import ImageBatches, batches_for
from duvae_cli.config.build import build_image_model, build_model
from duvae_cli.config.resolve import resolve_config
from duvae_cli.optim import train_step
from duvae_cli.train.loop import LoopState, _plateau


@pytest.fixture(scope="module")
def toy_images(tmp_path_factory):
    return load_dataset(write_toy_images(tmp_path_factory.mktemp("img")))


def test_train_batches_are_fresh_bernoulli_draws_of_the_grey_levels(toy_images):
    source = batches_for(toy_images.splits["train"])
    assert isinstance(source, ImageBatches)
    rows = np.arange(40)
    torch.manual_seed(0)
    draws = torch.stack([source.batch(rows, train=True) for _ in range(200)])  # (200, 40, 1, 28, 28)
    torch.manual_seed(0)
    assert torch.equal(draws[0], source.batch(rows, train=True))  # torch's global RNG: resumable
    assert not torch.equal(draws[0], draws[1])  # afresh at every batch
    grey = torch.from_numpy(toy_images.splits["train"].images[rows]).float().unsqueeze(1) / 255
    assert (draws.mean(0) - grey).abs().max() < 0.15  # E[pixel] = grey level (200 draws)
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    fixed = source.batch(rows)  # outside training: one fixed binarisation, the same every time
    assert torch.equal(fixed, source.batch(rows)) and set(fixed.unique().tolist()) <= {0.0, 1.0}


def test_valid_and_test_batches_are_the_stored_binarisation(toy_images):
    split = toy_images.splits["test"]
    batch = batches_for(split).batch(np.arange(5), train=True)
    assert torch.equal(batch[:, 0], torch.from_numpy(split.images[:5]).float())


def test_plan_uses_every_image_once_and_no_batch_of_one(toy_images):
    source = batches_for(toy_images.splits["train"])  # 122 images
    plan = source.plan(11, np.random.default_rng(0))
    assert sorted(np.concatenate(plan).tolist()) == list(range(122))
    assert min(len(b) for b in plan) >= 2
    assert not np.array_equal(np.concatenate(plan), np.arange(122))  # shuffled


@pytest.mark.parametrize("model", sorted(REGULARIZERS))
def test_a_few_steps_lower_the_loss_at_the_small_size(model, toy_images):
    config = resolve_config("omniglot", model, dict(size="small", latent_dim=4))
    torch.manual_seed(0)
    vae = build_image_model(config).train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.lr)
    batch = batches_for(toy_images.splits["valid"]).batch(np.arange(12))

    def loss() -> float:  # the same z and dropout noise before and after
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(1)
            return vae(batch, 1.0).loss.item()

    before = loss()
    for _ in range(6):
        train_step(vae, optimizer, batch, 1.0, config.clip)
    assert loss() < before


def test_resume_on_images_is_bit_exact(toy_images, tmp_path):
    """Interrupted after step 5 (the last checkpoint from step 4) and resumed: same weights and history, so the
    train binarisations drawn after the resume are the same pixels. 60 train images, 3 steps/epoch."""
    splits = toy_images.splits
    subset = SimpleNamespace(kind="image", sha256="toy", splits={
        "train": ImageSplit(splits["train"].images[:60], False), "valid": splits["valid"]})
    config = resolve_config("omniglot", "du", dict(size="small", latent_dim=4, epochs=2, batch_size=20,
                                                   warm_up=0.5, checkpoint_every=2, device="cpu"))
    whole, parts, _, _ = train_whole_and_resumed(config, subset, tmp_path, 5)

    rows = assert_same_run(whole, parts)
    assert rows[0][0]["val_ppl"] == "nan"  # PPL is text-only


@pytest.mark.parametrize("reference, decays", [("last", 1), ("best", 2)])
def test_plateau_counts_epochs_worse_than_the_reference(reference, decays, tmp_path):
    """Patience 2: 9.5 and 9.6 are worse than 9, so both rules halve the lr. The text rule then takes
    9.6 as its reference, and 9.4 resets its count; the image rule keeps the best, 9, and halves again
    after 9.4 and 9.45."""
    config = resolve_config("omniglot", "vae", dict(size="small", patience=2, plateau_reference=reference))
    torch.manual_seed(0)
    model = build_image_model(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    state = LoopState(lr=config.lr)
    for epoch, loss in enumerate([10.0, 9.0, 9.5, 9.6, 9.4, 9.45]):
        state.epoch, state.best_loss = epoch, min(state.best_loss, loss)
        _plateau(config, state, loss, model, optimizer, tmp_path / "best.safetensors", "cpu")
    assert state.decays == decays and state.lr == pytest.approx(1e-3 * 0.5**decays)


def test_image_presets_carry_the_paper_schedule_and_settings():
    config = resolve_config("omniglot", "du", {})
    schedule = (config.optimizer, config.lr, config.batch_size, config.patience, config.decay_from_epoch,
                config.plateau_reference, config.epochs, config.latent_dim, config.size)
    assert schedule == ("adam", 1e-3, 50, 20, 0, "best", 500, 32, "paper")
    assert (config.gamma, config.p) == (0.5, 0.9)
    beta = resolve_config("mnist", "beta", {})
    assert (beta.beta, beta.kl_start, beta.warm_up) == (0.8, 1.0, 0.0)
    assert resolve_config("omniglot", "bn", {}).gamma == 0.5
    assert resolve_config("yelp", "du", {}).plateau_reference == "last"


def test_small_size_is_for_images_only(toy_images):
    text = type("Text", (), {"kind": "text", "vocab": ["a"] * 10})()
    with pytest.raises(UsageError, match="image datasets only"):
        build_model(resolve_config("synthetic", "vae", dict(size="small")), text)
    assert math.isfinite(build_model(resolve_config("omniglot", "vae", dict(size="small")), toy_images)
                         .decoder.chunk_bytes(1))
