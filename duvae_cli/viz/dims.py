"""Per latent dimension: the mean KL to the prior and the variance of the posterior means (the AU
statistic, reference-spec §5) with the active-unit threshold marked."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from duvae_cli.probe.features import per_dimension_stats
from duvae_cli.viz.artifacts import Posteriors
from duvae_cli.viz.figure import integer_ticks, label_figure, new_figure

AU_THRESHOLD = 0.01


def draw_dims(post: Posteriors, threshold: float = AU_THRESHOLD) -> Figure:
    stats = per_dimension_stats(post.mean, post.logvar, threshold)
    dims = np.arange(1, post.mean.shape[1] + 1)
    fig = new_figure(max(6.0, 0.18 * len(dims) + 3.0), 5.5)
    kl_ax, var_ax = fig.subplots(2, 1, sharex=True)
    kl_ax.bar(dims, stats["kl"], color="C0")
    kl_ax.set(ylabel="KL (nats)", title=f"mean KL(q(z_d|x) || N(0,1)) per dimension, total {stats['kl'].sum():.3g}")
    active = stats["mean_variance"] >= threshold
    var_ax.bar(dims, np.maximum(stats["mean_variance"], 1e-12), color=np.where(active, "C2", "C7"))
    var_ax.axhline(threshold, color="C3", linestyle="--", linewidth=1, label=f"AU threshold {threshold:g}")
    var_ax.set_yscale("log")
    var_ax.set(xlabel="latent dimension", ylabel="Var_x[mu_d(x)]",
               title=f"variance of the posterior means: {stats['active']} of {len(dims)} active")
    var_ax.legend()
    integer_ticks(var_ax)
    label_figure(fig, f"{post.run_dir.name}: per-dimension KL and activity ({post.split} split, N={len(post.mean)})",
                 "analytic KL of the eval-mode posterior averaged over examples; AU: Var (N-1) of the means >= "
                 f"{threshold:g}; checkpoint {post.checkpoint} {post.checkpoint_sha256[:12]} (from {post.source})")
    return fig
