"""The public Python API: a trained run as an object (docs/api.md).

    import duvae_cli
    model = duvae_cli.load("runs/latest")
    codes = model.encode(["the food was great", "slow service"])    # .mean, .logvar: numpy (n, D)
    scores = model.score(["the food was great"], iw_samples=100)    # per-example nats, numpy
    model.reconstruct(["the food was great"]); model.sample(3); model.interpolate("a", "b", steps=5)

Inputs are a list of sentences (text runs), an array of images (image runs), or an `InputData` read
from a file (`duvae_cli.use.inputs.read_input`). Arrays come back as numpy (float32 codes, float64
scores); `decode` takes numpy or torch. Everything runs the frozen model in eval mode: BN running
statistics, no dropout, the DU variance floor on; nothing is trained or written. New text is checked
as the commands check it (use/familiar.py): `model.last_input` says how much of it was unknown, an
unfamiliar input raises an `UnfamiliarInput` warning, and `model.checks` (an `InputChecks`) can refuse it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from duvae_cli.metrics.evaluate import IW_SAMPLES
from duvae_cli.options import DEFAULT_SEED
from duvae_cli.progress import SILENT, note
from duvae_cli.use.familiar import InputChecks, UnfamiliarInput, familiarity, longest_training, review
from duvae_cli.use.generate import DecodeOptions, decode_codes, default_max_length, input_codes, \
    interpolation_codes, prior_codes, text_of
from duvae_cli.use.inputs import InputData, from_images, from_texts

CHUNK = 128  # inputs encoded and decoded together by `reconstruct` (and streamed by `duvae generate`)
IMAGE_CHUNK = 8  # images: each is 784 PixelCNN passes, so progress moves every few images


@dataclass
class Encoding:
    mean: np.ndarray  # float32 (n, D): eval-mode posterior means (the base mu0 with a flow)
    logvar: np.ndarray  # float32 (n, D)
    z_t: np.ndarray | None  # float32 (n, D): flow runs only, zT = flow(mu0)
    n_tokens: int  # text: ids read (without <s>/</s>)
    n_unk: int  # text: how many of them were <unk> (words outside the run's vocabulary)


class Model:
    """A trained run, loaded for use. `vae` is the `duvae_cli.models.VAE`, `dataset` the run's dataset.
    `checks` (InputChecks) says when new text is warned about or refused; `reporter` (None: Python
    warnings) is where the commands print those notes instead; `last_input` is the familiarity
    report (use/familiar.py, as a dict) of the last text input read."""

    def __init__(self, trained, device: torch.device, checks: InputChecks = InputChecks()):
        self.trained, self.device = trained, device
        self.vae, self.dataset, self.config = trained.model, trained.dataset, trained.config
        self.kind = self.dataset.kind  # "text" or "image"
        self.latent_dim = self.config.latent_dim
        self.checks, self.reporter, self.last_input = checks, None, None
        self._longest, self._checked = longest_training(trained), None

    def data(self, inputs) -> InputData:
        """`inputs` as the model reads them (sentences tokenized with the run's own tokenizer), checked
        once (`checks`): a DuvaeError naming it when refused."""
        data = inputs
        if not isinstance(inputs, InputData):
            data = from_images(np.asarray(inputs)) if self.kind == "image" else from_texts(
                list(inputs) if not isinstance(inputs, str) else inputs, self.dataset)
        if data is not self._checked:
            self._check(data)
        return data

    def _check(self, data: InputData) -> None:
        report = familiarity(data, self._longest)
        self._checked, self.last_input = data, None if report is None else report.to_dict()
        if report is None:
            return
        if self.reporter is not None:  # the commands: notes on stderr
            review(report, self.checks, lambda line: note(self.reporter, line), lambda line: note(self.reporter, line))
        else:
            review(report, self.checks, warn=lambda line: warnings.warn(line.removeprefix("warning: "),
                                                                         UnfamiliarInput, stacklevel=6))

    def encode(self, inputs) -> Encoding:
        """Posterior parameters per example (what `duvae encode` writes, `classify` reads)."""
        from duvae_cli.use.encode import encode_all

        data = self.data(inputs)
        arrays = encode_all(self.vae, data.split, self.config.eval_batch_size, self.device)
        return Encoding(arrays["mean"], arrays["logvar"], arrays.get("zT"), data.n_tokens, data.n_unk)

    def score(self, inputs, iw_samples: int = IW_SAMPLES, seed: int = DEFAULT_SEED, batch_size: int = 64) -> dict:
        """Per-example numbers in nats, float64 (n,), exactly as `duvae evaluate` computes them:
        `iw_nll` = -log p(x) estimated with K = iw_samples (positive; lower is better), `elbo` = the
        ELBO itself, rec + KL negated (a lower bound on log p(x): negative, higher is better),
        `elbo_nll` = -elbo (what `duvae evaluate` reports; >= iw_nll up to noise), `rec`, `kl`, and
        `n_tokens` (predicted tokens, </s> included)."""
        from duvae_cli.metrics.evaluate import EvalOptions, examples_for, score_examples

        data = self.data(inputs)
        options = EvalOptions(iw_samples=iw_samples, seed=seed, batch_size=batch_size)
        results = score_examples(self.vae, examples_for(data.split), options)
        return {**{k: results[k] for k in ("iw_nll", "elbo", "rec", "kl", "n_tokens")}, "elbo_nll": -results["elbo"]}

    def reconstruct(self, inputs, method: str = "greedy", beam: int = 5, temperature: float = 1.0,
                    max_length: int | None = None, seed: int = DEFAULT_SEED):
        """Decode each input's code (its posterior mean; through the flow, if any): sentences, or
        for image runs uint8 (n, 28, 28) 0/1 images drawn pixel by pixel."""
        options = DecodeOptions(method, beam, temperature, max_length, seed)
        parts = [outputs for _, outputs in self.reconstructions(inputs, options)]
        return np.concatenate(parts) if self.kind == "image" else [s for part in parts for s in part]

    def reconstructions(self, inputs, options: DecodeOptions = DecodeOptions(), chunk: int | None = None,
                        reporter=SILENT) -> Iterator[tuple[np.ndarray, list]]:
        """`reconstruct`, `chunk` inputs at a time (default CHUNK; images IMAGE_CHUNK), in input order:
        (indices, outputs) as each chunk is decoded (`duvae generate --reconstruct` prints them as they
        come). Sampled words and pixels are drawn from one generator seeded with `options.seed`, chunk
        after chunk."""
        data = self.data(inputs)
        generator = options.generator()
        chunk = chunk or (IMAGE_CHUNK if self.kind == "image" else CHUNK)
        with reporter.task("reconstructing", len(data)) as task:
            for start in range(0, len(data), chunk):
                indices = np.arange(start, min(len(data), start + chunk))
                codes = input_codes(self.vae, data.split, self.config.eval_batch_size, self.device, indices)
                yield indices, self._decode(codes, options, generator)
                task.advance(len(indices))

    def sample(self, n: int, method: str = "greedy", beam: int = 5, temperature: float = 1.0,
               max_length: int | None = None, seed: int = DEFAULT_SEED):
        """Decode n prior codes z ~ N(0, I) (seeded): sentences, or images for image runs."""
        options = DecodeOptions(method, beam, temperature, max_length, seed)
        return self._decode(prior_codes(n, self.latent_dim, seed), options)

    def interpolate(self, start: str, end: str, steps: int = 5, method: str = "greedy", beam: int = 5,
                    temperature: float = 1.0, max_length: int | None = None, seed: int = DEFAULT_SEED) -> list[str]:
        """Sentences decoded at `steps` points from the code of `start` to that of `end` (both included)."""
        if self.kind != "text":
            raise ValueError("interpolate: text runs only")
        codes = input_codes(self.vae, self.data([start, end]).split, self.config.eval_batch_size, self.device)
        _, path = interpolation_codes(codes[0], codes[1], steps)
        return self._decode(path, DecodeOptions(method, beam, temperature, max_length, seed))

    def codes(self, inputs) -> np.ndarray:
        """float32 numpy (n, D): the code each input stands for (what `reconstruct` decodes; with no
        flow, `encode(inputs).mean`)."""
        data = self.data(inputs)
        return input_codes(self.vae, data.split, self.config.eval_batch_size, self.device).numpy()

    def decode(self, codes, options: DecodeOptions = DecodeOptions()):
        """Sentences (or images) of arbitrary codes, numpy or torch (n, D)."""
        codes = codes if isinstance(codes, torch.Tensor) else torch.as_tensor(np.asarray(codes))
        return self._decode(codes.to(torch.float32), options)

    @torch.no_grad()
    def _decode(self, codes: torch.Tensor, options: DecodeOptions, generator: torch.Generator | None = None):
        self.vae.eval()
        generator = generator or options.generator()
        if self.kind == "image":  # PixelCNN ancestral sampling in raster order
            images = self.vae.decoder.sample(codes.to(self.device), generator)[:, 0]
            return images.cpu().numpy().astype(np.uint8)
        max_length = options.max_length or default_max_length(self.dataset)
        ids = decode_codes(self.vae.decoder, codes.to(self.device), options, max_length, generator)
        return [text_of(self.dataset, sentence) for sentence in ids]


def load(run_dir: str | Path = "runs/latest", checkpoint: str = "best", device: str = "auto",
         data_root: str | Path | None = None, checks: InputChecks = InputChecks()) -> Model:
    """A trained run (its `best` or `last` checkpoint) and the dataset it was trained on, in eval mode.
    A moved run finds the same data under `data_root`, its config's data_root or data/ (docs/runs.md);
    `model.trained.data_notes` says where. `run_dir` may be an export folder (`duvae export`), checked
    against its card's sha256 list first; without its data it reads through its own vocabulary.
    `checks`: when new text is warned about or refused (use/familiar.py)."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    resolved = as_device(device)
    return Model(load_trained(Path(run_dir), checkpoint, device=resolved, data_root=data_root, needs_data=False),
                 resolved, checks)
