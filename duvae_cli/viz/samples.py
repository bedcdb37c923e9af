"""Text samples of a run (`duvae visualize --kind samples`; decoding shared with `duvae generate`,
duvae_cli/use/generate.py), written to a text file: greedy reconstructions of test sentences (z = the
eval-mode posterior mean; with an IAF posterior, the flow applied to it) and sentences from prior
codes z ~ N(0, I) decoded greedily, by sampling and by beam search."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from duvae_cli.errors import UsageError
from duvae_cli.io import atomic_write_text
from duvae_cli.options import command_problem
from duvae_cli.probe.features import mean_codes
from duvae_cli.viz.artifacts import load_trained_text
from duvae_cli.use.generate import DecodeOptions, decode_codes


@dataclass(frozen=True)
class SampleOptions:
    n: int = 10  # test sentences to reconstruct and prior codes to decode
    beam: int = 5
    temperature: float = 1.0
    max_length: int | None = None  # default: the longest sentence of the split + 5
    seed: int = 783435
    split: str = "test"
    checkpoint: str = "best"
    device: str = "auto"

    def __post_init__(self):  # checked for every --kind: a bad --seed fails whatever is drawn
        problem = command_problem(n=self.n, beam=self.beam, temperature=self.temperature,
                                  max_length=self.max_length, seed=self.seed)
        if problem:  # limits declared in duvae_cli/options.py
            raise UsageError(problem)


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
    lines = [f"# duvae samples: run {trained.run_dir.name}, checkpoint {trained.checkpoint.stem} "
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
