"""Figure 1 (reference-spec §1.3): the aggregated posterior q(z) = mean_x N(z; mu_x, sigma_x^2) as a
contour (top) and the posterior means coloured by label (bottom). A latent space of more than two
dimensions is shown in the plane of the first two principal components of the means, where each
posterior projects to a 2-D Gaussian with a full covariance. A split that stores the true latent
(the synthetic dataset) gets the true mixture beside it: the per-label Gaussians fitted to the stored
z, weighted by label frequency, and the z themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from duvae_cli.errors import UsageError
from duvae_cli.viz.artifacts import Posteriors
from duvae_cli.viz.figure import label_figure, new_figure

GRID = 161  # points per axis of the density grid


@dataclass
class Plane:
    points: np.ndarray  # (N, 2) coordinates of the means
    covs: np.ndarray  # (N, 2, 2) posterior covariances in the plane
    axes: tuple[str, str]
    note: str


def project(mean: np.ndarray, logvar: np.ndarray) -> Plane:
    """The latent plane: z itself when D = 2, else the first two principal components of the means."""
    variance = np.exp(logvar)  # (N, D)
    dim = mean.shape[1]
    if dim < 2:
        raise UsageError("--kind latent: needs a latent space of at least 2 dimensions")
    if dim == 2:
        return Plane(mean, variance[:, :, None] * np.eye(2), ("z1", "z2"), "2-D latent space")
    centred = mean - mean.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    basis = vt[:2].T * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])  # (D, 2), fixed sign
    covs = np.einsum("dk,nd,dl->nkl", basis, variance, basis)  # P^T diag(sigma^2) P
    share = singular[:2] ** 2 / max(float((singular ** 2).sum()), 1e-300)
    axes = (f"PC1 ({share[0]:.0%} of mean variance)", f"PC2 ({share[1]:.0%})")
    return Plane(centred @ basis, covs, axes, f"{dim}-D latent space, first two principal components of the means")


def mixture_density(points: np.ndarray, covs: np.ndarray, grid: np.ndarray, weights: np.ndarray | None = None,
                    chunk: int = 128) -> np.ndarray:
    """sum_i w_i N(g; points_i, covs_i) at every grid point g (G, 2); default weights 1/N."""
    n = len(points)
    weights = np.full(n, 1.0 / n) if weights is None else weights
    a, b, d = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 1]
    det = np.maximum(a * d - b * b, 1e-300)
    density = np.zeros(len(grid))
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        dx = grid[None, :, 0] - points[part, 0, None]  # (C, G)
        dy = grid[None, :, 1] - points[part, 1, None]
        maha = (d[part, None] * dx * dx - 2 * b[part, None] * dx * dy + a[part, None] * dy * dy) / det[part, None]
        norm = weights[part] / (2 * math.pi * np.sqrt(det[part]))
        density += (norm[:, None] * np.exp(-0.5 * maha)).sum(axis=0)
    return density


def true_mixture(z: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(component means (K, 2), covariances (K, 2, 2), weights (K,)) fitted to the stored z per label."""
    classes = np.unique(labels)
    means = np.stack([z[labels == c].mean(axis=0) for c in classes])
    covs = np.stack([np.cov(z[labels == c].T) + 1e-9 * np.eye(2) for c in classes])
    weights = np.array([np.mean(labels == c) for c in classes])
    return means, covs, weights


def plot_limit(points: np.ndarray) -> float:
    """[-3, 3] as in the paper, widened (to a whole number) when over 2% of the coordinates fall outside."""
    reach = float(np.percentile(np.abs(points), 98)) if len(points) else 0.0
    return 3.0 if reach <= 3.0 else float(math.ceil(reach * 1.1))


def _panel_pair(fig: Figure, axes, mixture: tuple, scatter: np.ndarray, labels, names, title: str,
                lim: float, label_name: str = "label") -> None:
    """Density of `mixture` = (means, covs, weights or None) on top, `scatter` by label below."""
    top, bottom = axes
    ticks = np.linspace(-lim, lim, GRID)
    gx, gy = np.meshgrid(ticks, ticks)
    density = mixture_density(*mixture[:2], np.column_stack([gx.ravel(), gy.ravel()]), mixture[2])
    filled = top.contourf(gx, gy, density.reshape(gx.shape), levels=12, cmap="viridis")
    fig.colorbar(filled, ax=top, shrink=0.85, label="density")
    top.set_title(f"{title}: density")
    _scatter(bottom, scatter, labels, title, label_name)
    for ax in axes:
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel=names[0], ylabel=names[1], aspect="equal")


def _scatter(ax, points, labels, title: str, label_name: str = "label") -> None:
    ax.set_title(f"{title}: points by {label_name}")
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=3, color="tab:blue", alpha=0.6, linewidths=0)
        return
    if len(np.unique(labels)) > 10:  # e.g. Omniglot's 50 alphabets: a colour map, no legend
        ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="nipy_spectral", s=3, alpha=0.6, linewidths=0)
        return
    for label in np.unique(labels):
        chosen = labels == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=3, alpha=0.6, linewidths=0, label=str(label),
                   color=f"C{int(label) % 10}")
    ax.legend(title=label_name, markerscale=3, loc="upper right", frameon=True)


def draw_latent(post: Posteriors) -> Figure:
    plane = project(post.mean, post.logvar)
    has_truth = post.true_z is not None and post.labels is not None
    fig = new_figure(9.0 if has_truth else 5.0, 9.0)
    grid = fig.subplots(2, 2 if has_truth else 1, squeeze=False)
    lim = plot_limit(np.concatenate([plane.points, post.true_z]) if has_truth else plane.points)
    model_axes = grid[:, 1] if has_truth else grid[:, 0]
    _panel_pair(fig, model_axes, (plane.points, plane.covs, None), plane.points, post.labels, plane.axes,
                "aggregated posterior q(z)", lim, post.label_name)
    if has_truth:
        _panel_pair(fig, grid[:, 0], true_mixture(post.true_z, post.labels), post.true_z, post.labels,
                    ("z1", "z2"), "true latent", lim)
    label_figure(fig, f"{post.run_dir.name}: latent space ({post.split} split, N={len(post.mean)})",
                 f"q(z) = mean over x of N(z; mu_x, sigma_x^2), eval-mode posterior, {plane.note}; "
                 f"checkpoint {post.checkpoint} {post.checkpoint_sha256[:12]} (from {post.source})")
    return fig
