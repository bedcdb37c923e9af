"""Sentences (and images) from latent codes: reconstructions, prior samples and interpolations.

The one implementation behind `duvae generate`, `Model.reconstruct/sample/interpolate` and the text of
`duvae visualize --kind samples`:
- the code of an input is `VAE.codes`: the eval-mode posterior mean (with a flow, zT = the flow
  applied to it), computed in batches exactly as `classify` does;
- a prior code is z ~ N(0, I) from a torch generator seeded with `seed`;
- an interpolation is linear between the codes of its two endpoints: step k of K is
  z_a + t_k (z_b - z_a), t_k = k / (K - 1), so step 0 decodes z_a and step K-1 decodes z_b exactly;
- decoding (`decode.py`): greedy, beam (width `beam`, highest total log-probability) or sample
  (softmax at `temperature`, same seeded generator); at most `max_length` words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from duvae_cli.options import SEED, Option, checked, options_dataclass
from duvae_cli.probe.features import encode_split
from duvae_cli.use.decode import beam_search, greedy, sample

METHODS = ("greedy", "beam", "sample")
UNKNOWN_LONGEST = 45  # an export made without its data at hand records no longest sentence: 45 + 5 words

# How codes are decoded (`duvae generate` flags; `visualize --kind samples` shares their limits).
BEAM = Option("beam", int, 5, "beam: width.", range="[1, 1000]")
TEMPERATURE = Option("temperature", float, 1.0, "sample: softmax temperature.", range="(0, 1000]")
MAX_LENGTH = Option("max_length", int, None, "Most words per sentence (default: the run's longest sentence + 5).",
                    range="[1, 100000]")
DECODE_OPTIONS = (
    Option("method", str, "greedy", "greedy, beam or sample.", choices=METHODS, flags=("--decode",)),
    BEAM, TEMPERATURE, MAX_LENGTH,
    SEED.but(help="Seed of prior codes, word sampling and pixel sampling."),
)
# What is decoded (`duvae generate`): one of reconstruct, sample and interpolate.
SAMPLE = Option("sample", int, None, "Decode N codes from the prior N(0, I).", range="[1, 100000]", metavar="N")
STEPS = Option("steps", int, 5, "interpolate: points, both endpoints included.", range="[2, 10000]")
GENERATE_OPTIONS = (
    Option("reconstruct", Path, None, "Reconstruct the examples of this file (text, dataset.h5 with --split, "
           "or .npz).", metavar="FILE"),
    SAMPLE,
    Option("interpolate", str, None, "Two sentences: decode --steps codes on the line between their posterior "
           "means.", nargs=2, metavar="A B"),
    STEPS,
)


@options_dataclass(DECODE_OPTIONS)
class DecodeOptions:
    """How codes become words: greedy, beam (width `beam`) or sample (at `temperature`, seeded by
    `seed`), at most `max_length` words (None: the run's longest sentence + 5)."""

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)


def default_max_length(dataset) -> int:
    """The longest sentence of any split of the run's dataset, plus 5 words (an export without its
    data: the longest one it recorded, else UNKNOWN_LONGEST; docs/use.md)."""
    longest = [int(s.lengths.max()) for s in dataset.splits.values() if len(s)]
    if not longest:
        return int(dataset.attrs.get("longest_sentence", UNKNOWN_LONGEST)) + 5
    return max(longest) + 5


def input_codes(model, split, batch_size: int, device, indices: np.ndarray | None = None) -> torch.Tensor:
    """float32 (n, D): the code each example (of `indices`, default all) stands for (`VAE.codes`), in order."""
    codes = encode_split(model, split, indices, batch_size, device, lambda batch: model.codes(batch)[1:])[0]
    return torch.as_tensor(codes, dtype=torch.float32)


def prior_codes(n: int, dim: int, seed: int) -> torch.Tensor:
    """float32 (n, D) ~ N(0, I), reproducible from `seed`."""
    checked(SAMPLE, n)
    checked(SEED, seed)
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def interpolation_codes(start, end, steps: int) -> tuple[np.ndarray, torch.Tensor]:
    """(t (K,), codes (K, D)): K points on the segment from `start` (D,) to `end` (D,), both included
    (numpy or torch in; torch out)."""
    checked(STEPS, steps)  # >= 2: the two endpoints
    start, end = torch.as_tensor(start), torch.as_tensor(end)
    t = np.linspace(0.0, 1.0, steps)
    weights = torch.as_tensor(t, dtype=start.dtype)[:, None]
    codes = start[None] + weights * (end - start)[None]
    codes[-1] = end  # exactly the end code, whatever the rounding of 1 * (end - start)
    return t, codes


def decode_codes(decoder, z: torch.Tensor, options: DecodeOptions, max_length: int,
                 generator: torch.Generator | None = None) -> list[list[int]]:
    """Word ids of one sentence per row of z (N, D) (on the decoder's device); eval mode expected."""
    if options.method == "greedy":
        return greedy(decoder, z, max_length)
    if options.method == "sample":
        return sample(decoder, z, max_length, generator or options.generator(), options.temperature)
    return [beam_search(decoder, row, options.beam, max_length) for row in z]


def text_of(dataset, ids) -> str:
    return dataset.decode(ids) if len(ids) else ""
