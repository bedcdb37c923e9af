"""Text samples of a run (`duvae visualize --kind samples`; decoding shared with `duvae generate`,
duvae_cli/use/generate.py), written to a text file: greedy reconstructions of test sentences (z = the
eval-mode posterior mean; with an IAF posterior, the flow applied to it) and sentences from prior
codes z ~ N(0, I) decoded greedily, by sampling and by beam search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from duvae_cli.errors import UsageError
from duvae_cli.io import atomic_write_text
from duvae_cli.options import CHECKPOINT, DEVICE, SEED, Option, options_dataclass
from duvae_cli.probe.features import mean_codes
from duvae_cli.viz.artifacts import load_trained_text
from duvae_cli.use.generate import BEAM, MAX_LENGTH, TEMPERATURE, DecodeOptions, decode_codes


SPLIT = Option("split", str, "test", "Split to encode or read metrics from.")
# `duvae visualize --kind samples` (the decoding limits are `duvae generate`'s, use/generate.py).
SAMPLE_OPTIONS = (
    Option("n", int, 10, "samples: sentences to reconstruct and prior codes.", range="[1, 100000]", flags=("--n",)),
    BEAM.but(help="samples: beam width."),
    TEMPERATURE.but(help="samples: sampling temperature."),
    MAX_LENGTH.but(help="samples: most words per sentence."),
    SEED.but(help="samples: which sentences and prior codes."),
    SPLIT, CHECKPOINT, DEVICE,
)


@options_dataclass(SAMPLE_OPTIONS)
class SampleOptions:
    """Which test sentences and prior codes are decoded, and how (max_length None: the longest
    sentence of the split + 5). Checked for every --kind: a bad --seed fails whatever is drawn."""


def sample_text(run_dir: Path, options: SampleOptions = SampleOptions()) -> str:
    trained, device = load_trained_text(run_dir, options.checkpoint, options.device, "duvae visualize")
    dataset, decoder = trained.dataset, trained.model.decoder
    if options.split not in dataset.splits:
        raise UsageError(f"--split {options.split}: the dataset has {', '.join(dataset.splits)}")
    data = dataset.splits[options.split]
    max_length = options.max_length or int(data.lengths.max()) + 5
    rng = np.random.default_rng(options.seed)
    rows = np.sort(rng.choice(len(data), size=min(options.n, len(data)), replace=False))
    means = torch.as_tensor(mean_codes(trained.model, data, rows, device=device), dtype=torch.float32)
    generator = torch.Generator().manual_seed(options.seed)
    prior = torch.randn(options.n, means.shape[1], generator=generator)
    lines = [f"# duvae samples: run {trained.run_dir.name}, checkpoint {trained.checkpoint_name} "
             f"{trained.checkpoint_sha256[:12]}, seed {options.seed}",
             f"# decoding: greedy = most likely word each step; sampling = softmax at temperature "
             f"{options.temperature:g}; beam = width {options.beam}, highest total log-probability; "
             f"at most {max_length} words", "",
             f"## reconstructions of {options.split} sentences (z = posterior mean, greedy)"]
    greedy = DecodeOptions("greedy")
    for row, ids in zip(rows, decode_codes(decoder, means.to(device), greedy, max_length)):
        lines += [f"[{row}] input:  {_text(dataset, data.sentence(row))}", f"      output: {_text(dataset, ids)}"]
    lines += ["", "## from the prior, z ~ N(0, I)"]
    sampling, beam = DecodeOptions("sample", temperature=options.temperature), DecodeOptions("beam", options.beam)
    decoded = {"greedy": decode_codes(decoder, prior.to(device), greedy, max_length),
               "sampling": decode_codes(decoder, prior.to(device), sampling, max_length, generator),
               f"beam({options.beam})": decode_codes(decoder, prior.to(device), beam, max_length)}
    for i in range(options.n):
        lines.append(f"[{i}] z = ({', '.join(f'{v:.2f}' for v in prior[i][:4].tolist())}"
                     f"{', ...' if prior.shape[1] > 4 else ''})")
        lines += [f"    {name:<9} {_text(dataset, ids[i])}" for name, ids in decoded.items()]
    return "\n".join(lines) + "\n"


def _text(dataset, ids) -> str:
    return dataset.decode(ids) if len(ids) else "(empty sentence)"


def write_samples(run_dir: Path, path: Path, options: SampleOptions = SampleOptions()) -> Path:
    atomic_write_text(path, sample_text(run_dir, options))
    return path
