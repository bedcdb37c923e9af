"""Image samples of a run (`duvae visualize --kind samples` on an image run): one PNG with rows of
test images, their reconstructions, and samples from the prior.

Reconstructions decode z = the eval-mode posterior mean (pushed through the flow, if any) and prior
samples z ~ N(0, I); both are drawn pixel by pixel from the PixelCNN (ancestral sampling in raster
order, `PixelCNNDecoder.sample`), with one seeded generator, so the figure is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from duvae_cli.errors import UsageError
from duvae_cli.data.batching import batches_for
from duvae_cli.viz.artifacts import load_trained_run
from duvae_cli.viz.figure import label_figure, new_figure

GAP = 2  # pixels between tiles


def tile_row(images: np.ndarray) -> np.ndarray:
    """(n, H, W) -> one (H, n W + (n - 1) GAP) strip, gaps at 0.5 (grey between black and white)."""
    n, height, width = images.shape
    strip = np.full((height, n * width + (n - 1) * GAP), 0.5)
    for i, image in enumerate(images):
        strip[:, i * (width + GAP): i * (width + GAP) + width] = image
    return strip


@torch.no_grad()
def image_samples(model, data, n: int, seed: int, device) -> dict[str, np.ndarray]:
    """{"rows", "inputs", "reconstructions", "prior"}: n test rows and (n, H, W) arrays of 0/1."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
    model.eval()
    x = batches_for(data).batch(rows).to(device)  # the stored (fixed) binarisation
    posterior = model.encode(x, kl_weight=1.0)
    z_mean, _ = model.draw(posterior, torch.zeros_like(posterior.mean))  # (n, D): mean (through a flow)
    generator = torch.Generator().manual_seed(seed)
    prior = torch.randn(n, z_mean.shape[1], generator=generator).to(device)
    drawn = model.decoder.sample(torch.cat([z_mean, prior]), generator)[:, 0].cpu().numpy()
    return {"rows": rows, "inputs": x[:, 0].cpu().numpy(), "reconstructions": drawn[: len(rows)],
            "prior": drawn[len(rows):]}


def draw_image_samples(run_dir: Path, options) -> Figure:
    """The figure for `visualize --kind samples` (options: viz.samples.SampleOptions)."""
    if options.n < 1:
        raise UsageError("--n must be >= 1")
    trained, device = load_trained_run(run_dir, options.checkpoint, options.device)
    splits = trained.dataset.splits
    if options.split not in splits:
        raise UsageError(f"--split {options.split}: the dataset has {', '.join(splits)}")
    drawn = image_samples(trained.model, splits[options.split], options.n, options.seed, device)
    panels = [(f"{options.split} images (rows {', '.join(map(str, drawn['rows'][:8]))}"
               f"{', ...' if len(drawn['rows']) > 8 else ''})", drawn["inputs"]),
              ("reconstructions: z = posterior mean, pixels sampled", drawn["reconstructions"]),
              ("prior samples: z ~ N(0, I), pixels sampled", drawn["prior"])]
    return draw_panels(panels, f"{Path(run_dir).name}: samples ({trained.checkpoint_name} "
                               f"{trained.checkpoint_sha256[:12]}, seed {options.seed})")


def draw_panels(panels: list[tuple[str, np.ndarray]], title: str,
                caption: str = "PixelCNN ancestral sampling in raster order, one Bernoulli draw per pixel; "
                               "ink is black") -> Figure:
    """One strip of tiles per (title, (n, H, W) images of 0/1) panel (also `duvae generate`'s grid)."""
    most = max(len(images) for _, images in panels)
    width = max(4.0, 0.45 * most + 1.0)
    row = (width - 0.4) * 28 / (most * (28 + GAP))  # inches per strip of tiles
    fig = new_figure(width, len(panels) * (row + 0.3) + 0.9)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (name, images) in zip(axes, panels):
        strip = tile_row(np.asarray(images, dtype=np.float64))
        padded = np.full((strip.shape[0], most * (28 + GAP) - GAP), np.nan)  # shorter strips: blank right
        padded[:, : strip.shape[1]] = strip
        ax.imshow(padded, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    label_figure(fig, title, caption)
    return fig
