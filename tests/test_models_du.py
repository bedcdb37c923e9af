"""DU-VAE's uncertainty half: the variance floor alpha = 1/(2 pi e) and dropout on the variances
(Eq. 6), including Proposition 1 (dropout raises the batch MPD and lowers the CE in expectation)."""

import math

import pytest
import torch

from duvae_cli.methods import build_regularizer
from duvae_cli.methods.du import ALPHA



D = 8


def du(p: float = 0.8, **options):
    return build_regularizer("du", D, gamma=0.5, p=p, **options).double()


def raw_posterior(seed: int, batch: int = 16):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, D, generator=g, dtype=torch.float64)
    logvar = 2 * torch.randn(batch, D, generator=g, dtype=torch.float64) - 1
    return mean, logvar


def floored(raw_logvar: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    return torch.log(raw_logvar.exp() + alpha)


def test_alpha_is_the_zero_entropy_variance():
    assert ALPHA == pytest.approx(1 / (2 * math.pi * math.e), rel=1e-15)
    assert 0.5 * math.log(2 * math.pi * math.e * ALPHA) == pytest.approx(0.0, abs=1e-15)
    assert du().alpha == ALPHA
    assert du(alpha_scale=2.0).alpha == pytest.approx(2 * ALPHA, rel=1e-15)


def test_eval_is_deterministic_and_only_floored():
    regularizer = du()
    mean, logvar = raw_posterior(0)
    regularizer.train().posterior(mean, logvar, 1.0)  # move the BN running statistics off their init
    regularizer.eval()
    torch.manual_seed(0)
    first = regularizer.posterior(mean, logvar, 1.0)
    second = regularizer.posterior(mean, logvar, 1.0)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    torch.testing.assert_close(first[1], floored(logvar), rtol=0, atol=1e-15)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kl_weight", [0.0, 0.5, 0.999])
def test_warm_up_has_neither_floor_nor_dropout(kl_weight, training):
    """The reference adds alpha (and drops) only once the KL weight is 1, in training and validation."""
    regularizer = du().train(training)
    mean, logvar = raw_posterior(1, batch=256)
    _, new_logvar = regularizer.posterior(mean, logvar, kl_weight)
    assert torch.equal(new_logvar, logvar)
    assert (new_logvar.exp() < ALPHA).any()  # not vacuous: the raw variances go below the floor


@pytest.mark.parametrize("training", [True, False])
def test_floor_switches_on_at_weight_one(training):
    regularizer = du(p=1.0).train(training)  # p = 1: the floor alone
    mean, logvar = raw_posterior(1, batch=64)
    _, new_logvar = regularizer.posterior(mean, logvar, 1.0)
    torch.testing.assert_close(new_logvar, floored(logvar), rtol=0, atol=1e-15)


@pytest.mark.parametrize("options", [dict(floor_during_warmup=True), dict(dropout_during_warmup=True)])
def test_options_put_the_floor_in_warm_up(options):
    """`floor_during_warmup` keeps alpha from step 0; Eq. 6's dropout needs the floor, so
    `dropout_during_warmup` brings it along. Either way every variance is >= alpha at weight 0.2."""
    regularizer = du(p=0.5, **options).train()
    mean, logvar = raw_posterior(1, batch=256)
    torch.manual_seed(0)
    _, new_logvar = regularizer.posterior(mean, logvar, 0.2)
    assert (new_logvar.exp() >= ALPHA * (1 - 1e-12)).all()
    dropped = (new_logvar.exp() - ALPHA).abs() <= 1e-15
    assert dropped.any() == ("dropout_during_warmup" in options)
    if "floor_during_warmup" in options:
        torch.testing.assert_close(new_logvar, floored(logvar), rtol=0, atol=1e-15)


def dropped_and_kept(regularizer, logvar, kl_weight, p):
    """Masks of entries at the floor and of entries at (sigma2 - alpha) / p + alpha; they must cover all."""
    _, new_logvar = regularizer.posterior(torch.randn_like(logvar), logvar, kl_weight)
    var = new_logvar.exp()
    dropped = (var - ALPHA).abs() <= 1e-15
    kept_value = logvar.exp() / p + ALPHA  # sigma2 = exp(raw) + alpha, so sigma2 - alpha = exp(raw)
    kept = (var - kept_value).abs() <= 1e-12 * kept_value
    return dropped, kept


@pytest.mark.parametrize("kl_weight, during_warmup", [(1.0, False), (0.3, True)])
def test_dropout_pins_dropped_entries_to_the_floor(kl_weight, during_warmup):
    p = 0.7
    regularizer = du(p=p, dropout_during_warmup=during_warmup).train()
    _, logvar = raw_posterior(2, batch=512)
    torch.manual_seed(0)
    dropped, kept = dropped_and_kept(regularizer, logvar, kl_weight, p)
    assert (dropped ^ kept).all(), "every entry is either at the floor or rescaled, never both"
    n = dropped.numel()
    drop_rate = dropped.double().mean().item()
    assert abs(drop_rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # p is the keep probability


def test_p_one_never_drops():
    regularizer = du(p=1.0).train()
    _, logvar = raw_posterior(3, batch=256)
    _, new_logvar = regularizer.posterior(torch.randn_like(logvar), logvar, 1.0)
    torch.testing.assert_close(new_logvar, floored(logvar), rtol=0, atol=1e-15)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5])
def test_p_outside_the_keep_range_is_refused(p):
    with pytest.raises(ValueError, match="keep probability"):
        du(p=p)


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_dropout_preserves_the_expected_variance(p):
    """E[sigma2_hat] = sigma2 per entry (Eq. 6), Monte Carlo over many draws, CLT tolerance."""
    draws = 4000
    regularizer = du(p=p).train()
    mean, logvar = raw_posterior(4, batch=8)
    torch.manual_seed(1)
    # identical copies of one batch: BN statistics are unchanged, the dropout masks independent
    _, new_logvar = regularizer.posterior(mean.repeat(draws, 1), logvar.repeat(draws, 1), 1.0)
    var_hat = new_logvar.exp().view(draws, *logvar.shape)
    sigma2 = logvar.exp() + ALPHA
    std_error = logvar.exp() * math.sqrt((1 - p) / p) / math.sqrt(draws)
    z_scores = (var_hat.mean(0) - sigma2) / std_error
    assert z_scores.abs().max() < 5
    assert var_hat.var(0).mean() > 0  # not vacuous: the draws differ


@pytest.mark.parametrize("training, kl_weight", [(True, 1.0), (True, 0.2), (False, 1.0)])
def test_floor_holds_for_extreme_raw_variances(training, kl_weight):
    regularizer = du(p=0.5, floor_during_warmup=kl_weight < 1).train(training)
    raw = torch.tensor([-1e3, -80.0, -30.0, -5.0, 0.0, 5.0, 30.0], dtype=torch.float64)
    logvar = raw.view(-1, 1).expand(-1, D).repeat(20, 1)
    mean = torch.randn_like(logvar)
    _, new_logvar = regularizer.posterior(mean, logvar, kl_weight)
    assert torch.isfinite(new_logvar).all()
    assert (new_logvar.exp() >= ALPHA * (1 - 1e-12)).all()
    at_floor = logvar < -60  # exp(raw) is negligible next to alpha: sigma2 is the floor itself
    torch.testing.assert_close(new_logvar[at_floor].exp(),
                               torch.full_like(new_logvar[at_floor], ALPHA), rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------- Proposition 1

def mpd_per_dim(mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Reference MPD (reference-spec §5) per dimension of (..., B, D) batches; i = j included."""
    squared = (mean.unsqueeze(-2) - mean.unsqueeze(-3)).pow(2) / (var.unsqueeze(-3) + 1e-9)  # [i, j]
    spread = var.mean(-2) * (1 / (var + 1e-9)).mean(-2)
    return 0.5 * (squared.mean((-3, -2)) + spread - 1)


def ce_per_dim(var: torch.Tensor) -> torch.Tensor:
    return 0.5 * (var.log().mean(-2) + math.log(2 * math.pi * math.e))


def test_mpd_formula_matches_the_pairwise_kl_mean():
    """The reference MPD_d is the mean over all pairs (i, j) of KL(q_i || q_j) in dimension d."""
    mean, logvar = raw_posterior(5, batch=6)
    var = logvar.exp()
    m_i, m_j, v_i, v_j = mean[:, None], mean[None], var[:, None], var[None]
    pairwise = 0.5 * (v_i / v_j + (m_i - m_j).pow(2) / v_j - (v_i / v_j).log() - 1)
    torch.testing.assert_close(mpd_per_dim(mean, var), pairwise.mean((0, 1)), rtol=1e-5, atol=0)  # up to the 1e-9


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_proposition_1_dropout_raises_mpd_and_lowers_ce(p):
    draws, batch = 1000, 16
    regularizer = du(p=p).train()
    mean, logvar = raw_posterior(6, batch=batch)
    torch.manual_seed(2)
    base_mean, _ = regularizer.posterior(mean, logvar, 0.5)  # warm-up: no dropout (BN alone)
    base_logvar = floored(logvar)  # the floor, no dropout
    drop_mean, drop_logvar = regularizer.posterior(mean.repeat(draws, 1), logvar.repeat(draws, 1), 1.0)
    drop_mean = drop_mean.view(draws, batch, D)
    torch.testing.assert_close(drop_mean, base_mean.expand_as(drop_mean))  # dropout leaves means alone
    drop_var = drop_logvar.exp().view(draws, batch, D)

    mpd_base, ce_base = mpd_per_dim(base_mean, base_logvar.exp()), ce_per_dim(base_logvar.exp())
    mpd_drop, ce_drop = mpd_per_dim(drop_mean, drop_var), ce_per_dim(drop_var)  # (draws, D)
    mpd_error = mpd_drop.std(0) / math.sqrt(draws)
    ce_error = ce_drop.std(0) / math.sqrt(draws)
    assert ((mpd_drop.mean(0) - mpd_base) > 5 * mpd_error).all()
    assert ((ce_base - ce_drop.mean(0)) > 5 * ce_error).all()
