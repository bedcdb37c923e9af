"""CR-VAE (issue 31): the consistency term is the KL from the augmented posterior to the original one
and 0 when t is the identity; the augmentation is torchvision's RandomAffine on binary images; the
term acts in training only; configs it cannot run are refused in one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from duvae_cli.config.build import build_image_model
from duvae_cli.config.resolve import resolve_config
from duvae_cli.data.augment import affine, random_affine
from duvae_cli.errors import UsageError
from duvae_cli.methods.cr import gaussian_kl
from duvae_cli.runtime.distributed import World
from duvae_cli.train import parallel

IDENTITY = dict(cr_degrees=0.0, cr_translate=0.0, cr_scale_min=1.0, cr_scale_max=1.0)


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 1, 28, 28), 0.25), generator=g)


def _model(**options):
    config = resolve_config("omniglot", "cr-vae", dict(size="small", latent_dim=4, **options))
    torch.manual_seed(0)
    return build_image_model(config).train()


def test_consistency_kl_is_the_kl_from_the_augmented_posterior():
    g = torch.Generator().manual_seed(1)
    mean_a, logvar_a, mean, logvar = (torch.randn(8, 5, generator=g) for _ in range(4))
    ours = gaussian_kl(mean_a, logvar_a, mean, logvar).sum(-1)
    expected = kl_divergence(Normal(mean_a, (0.5 * logvar_a).exp()), Normal(mean, (0.5 * logvar).exp())).sum(-1)
    torch.testing.assert_close(ours, expected)
    assert (ours > 0).all()
    assert not torch.allclose(ours, gaussian_kl(mean, logvar, mean_a, logvar_a).sum(-1))  # not symmetric
    assert torch.equal(gaussian_kl(mean, logvar, mean, logvar), torch.zeros_like(mean))


def test_identity_augmentation_returns_the_images_and_the_cr_term_is_zero():
    x = _images()
    assert torch.equal(random_affine(x, 0.0, 0.0, (1.0, 1.0)), x)

    def extra(cr_lambda: float) -> torch.Tensor:
        model = _model(cr_lambda=cr_lambda, **IDENTITY)
        posterior = model.encode(x)
        with torch.random.fork_rng():
            torch.manual_seed(5)
            return model.regularizer.extra_loss(model, x, posterior, 1.0).detach()

    assert torch.equal(extra(1.0), extra(0.0))  # lambda x KL(q(z|x) || q(z|x)) = 0 exactly


def test_a_real_augmentation_adds_a_positive_cr_term():
    x = _images()

    def extra(cr_lambda: float) -> torch.Tensor:
        model = _model(cr_lambda=cr_lambda)
        with torch.random.fork_rng():
            torch.manual_seed(5)
            return model.regularizer.extra_loss(model, x, model.encode(x), 1.0).detach()

    assert (extra(1.0) > extra(0.0)).all()


def test_augmented_images_stay_binary_and_integer_shifts_are_zero_filled_rolls():
    x = _images(20, seed=2)
    out = random_affine(x, 15.0, 0.05, (0.9, 1.1), generator=torch.Generator().manual_seed(3))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    shifted = random_affine(x, 0.0, 0.1, (1.0, 1.0), generator=torch.Generator().manual_seed(4))
    u = torch.rand(20, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    dx, dy = (torch.round(0.1 * 28 * (2 * u[:, i] - 1)).long().tolist() for i in (1, 2))
    assert len({(a, b) for a, b in zip(dx, dy)}) > 3  # several shifts, in {-3, ..., 3}
    for i in range(20):
        expected = torch.zeros(28, 28)
        src = x[i, 0, max(0, -dy[i]): 28 - max(0, dy[i]), max(0, -dx[i]): 28 - max(0, dx[i])]
        expected[max(0, dy[i]): max(0, dy[i]) + src.shape[0], max(0, dx[i]): max(0, dx[i]) + src.shape[1]] = src
        assert torch.equal(shifted[i, 0], expected), i


def test_rotation_is_counter_clockwise_about_the_centre():
    x = _images(2, seed=3)
    quarter = affine(x, torch.full((2,), math.pi / 2), torch.zeros(2), torch.zeros(2), torch.ones(2))
    assert torch.equal(quarter, torch.rot90(x, 1, dims=(2, 3)))


def test_draws_are_per_image_and_reproducible():
    x = _images(1).expand(8, -1, -1, -1)
    first = random_affine(x, 15.0, 0.05, (0.9, 1.1), generator=torch.Generator().manual_seed(6))
    again = random_affine(x, 15.0, 0.05, (0.9, 1.1), generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert len({tuple(image.flatten().tolist()) for image in first}) > 1  # one image, several copies


def test_the_cr_term_acts_in_training_only(monkeypatch):
    model, x = _model(), _images()
    out = model(x, 1.0)
    assert out.loss > (out.rec + out.kl_term).mean() + 1.0  # the augmented ELBO is in the loss
    monkeypatch.setattr(type(model.regularizer), "augment", lambda self, images: 1 / 0)
    model.eval()
    out = model(x, 1.0)  # no augmentation in eval mode: validation, evaluation, probes
    torch.testing.assert_close(out.loss, (out.rec + out.kl_term).mean())


def test_text_data_savi_and_torchrun_are_refused(duvae, tmp_path):
    from toyruns import make_toy_data, toy_sets

    root = make_toy_data(tmp_path / "data")
    result = duvae("train", "--dataset", "toy", "--model", "cr-vae", *toy_sets(root), "--run-dir", tmp_path / "run",
                   "--quiet")
    assert result.code == 2 and result.stderr.count("\n") == 1, result
    assert "--model cr-vae: runs on image data only, not text" in result.stderr  # its capabilities.data
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="--strategy savi does not use"):
        resolve_config("omniglot", "cr-vae", dict(strategy="savi"))
    with pytest.raises(UsageError, match="cr_scale_min 1.2 is above cr_scale_max 1.1"):
        resolve_config("omniglot", "cr-vae", sets=["cr_scale_min=1.2"])
    config = resolve_config("omniglot", "cr-vae")
    parallel.check_config(config, World(0, 1))  # one process: fine
    with pytest.raises(UsageError, match="--model cr-vae: torchrun training does not support it"):
        parallel.check_config(config, World(0, 2))  # its capabilities.multi_process


def test_an_unprepared_omniglot_is_image_data_and_the_line_says_prepare_it(duvae, tmp_path):
    """Before `duvae prepare omniglot` the dataset is still image data: the one line names the
    missing file and the command that makes it, not "runs on image data only, not text"."""
    result = duvae("train", "--dataset", "omniglot", "--model", "cr-vae", "--size", "small",
                   "--set", f"data_root={tmp_path / 'data'}", "--run-dir", tmp_path / "run", "--quiet")
    assert result.code == 2 and result.stderr.count("\n") == 1, result
    assert "dataset.h5 not found; run `duvae prepare omniglot" in result.stderr
    assert not (tmp_path / "run").exists()


def test_cr_lambda_is_a_flag_and_the_augmentation_is_the_simple_policy():
    config = resolve_config("omniglot", "cr-vae", dict(cr_lambda=0.5))
    regularizer = build_image_model(config).regularizer
    assert (regularizer.cr_lambda, regularizer.cr_degrees, regularizer.cr_translate, regularizer.cr_scale) == \
        (0.5, 15.0, 0.05, (0.9, 1.1))
    assert np.isclose(config.kl_start, 0.0) and config.anneal == "linear"  # the image schedule, unchanged


def test_resume_of_a_cr_run_is_bit_exact(tmp_path):
    """Interrupted after step 5 (the last checkpoint from step 4) and resumed: the augmentation draws after the
    resume come from the checkpointed generator, so weights and history equal the uninterrupted run's."""
    from interrupting import assert_same_run, train_whole_and_resumed
    from test_images_toyrun import write_toy_images

    from duvae_cli.data.store import load_dataset

    dataset = load_dataset(write_toy_images(tmp_path / "data"))
    config = resolve_config("omniglot", "cr-vae", dict(size="small", latent_dim=4, epochs=2, batch_size=20,
                                                       warm_up=0.5, checkpoint_every=2, device="cpu",
                                                       train_examples=60))
    whole, parts, _, _ = train_whole_and_resumed(config, dataset, tmp_path, 5)
    assert_same_run(whole, parts)
