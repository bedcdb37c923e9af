"""The public Python API: a trained run as an object (docs/api.md).

    import duvae_cli
    model = duvae_cli.load("runs/latest")
    codes = model.encode(["the food was great", "slow service"])    # .mean, .logvar (n, D)
    scores = model.score(["the food was great"], iw_samples=100)    # per-example nats
    model.reconstruct(["the food was great"]); model.sample(3); model.interpolate("a", "b", steps=5)

Inputs are a list of sentences (text runs), an array of images (image runs), or an `InputData` read
from a file (`duvae_cli.use.inputs.read_input`). Everything runs the frozen model in eval mode: BN
running statistics, no dropout, the DU variance floor on; nothing is trained or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from duvae_cli.metrics.evaluate import IW_SAMPLES
from duvae_cli.options import DEFAULT_SEED
from duvae_cli.use.generate import DecodeOptions, decode_codes, default_max_length, input_codes, \
    interpolation_codes, prior_codes, text_of
from duvae_cli.use.inputs import InputData, from_images, from_texts


@dataclass
class Encoding:
    mean: np.ndarray  # float32 (n, D): eval-mode posterior means (the base mu0 with a flow)
    logvar: np.ndarray  # float32 (n, D)
    z_t: np.ndarray | None  # float32 (n, D): flow runs only, zT = flow(mu0)
    n_tokens: int  # text: ids read (without <s>/</s>)
    n_unk: int  # text: how many of them were <unk> (words outside the run's vocabulary)


class Model:
    """A trained run, loaded for use. `vae` is the `duvae_cli.models.VAE`, `dataset` the run's dataset."""

    def __init__(self, trained, device: torch.device):
        self.trained, self.device = trained, device
        self.vae, self.dataset, self.config = trained.model, trained.dataset, trained.config
        self.kind = self.dataset.kind  # "text" or "image"
        self.latent_dim = self.config.latent_dim

    def data(self, inputs) -> InputData:
        """`inputs` as the model reads them (sentences tokenized with the run's own tokenizer)."""
        if isinstance(inputs, InputData):
            return inputs
        if self.kind == "image":
            return from_images(np.asarray(inputs))
        return from_texts(list(inputs) if not isinstance(inputs, str) else inputs, self.dataset)

    def encode(self, inputs) -> Encoding:
        """Posterior parameters per example (what `duvae encode` writes, `classify` reads)."""
        from duvae_cli.use.encode import encode_all

        data = self.data(inputs)
        arrays = encode_all(self.vae, data.split, self.config.eval_batch_size, self.device)
        return Encoding(arrays["mean"], arrays["logvar"], arrays.get("zT"), data.n_tokens, data.n_unk)

    def score(self, inputs, iw_samples: int = IW_SAMPLES, seed: int = DEFAULT_SEED, batch_size: int = 64) -> dict:
        """Per-example numbers in nats, float64 (n,): iw_nll (K = iw_samples), elbo, rec, kl, and
        n_tokens (predicted tokens, </s> included), exactly as `duvae evaluate` computes them."""
        from duvae_cli.metrics.evaluate import EvalOptions, examples_for, score_examples

        data = self.data(inputs)
        options = EvalOptions(iw_samples=iw_samples, seed=seed, batch_size=batch_size)
        results = score_examples(self.vae, examples_for(data.split), options)
        return {k: results[k] for k in ("iw_nll", "elbo", "rec", "kl", "n_tokens")}

    def reconstruct(self, inputs, method: str = "greedy", beam: int = 5, temperature: float = 1.0,
                    max_length: int | None = None, seed: int = DEFAULT_SEED):
        """Decode each input's code (its posterior mean; through the flow, if any): sentences, or
        for image runs uint8 (n, 28, 28) 0/1 images drawn pixel by pixel."""
        data = self.data(inputs)
        codes = input_codes(self.vae, data.split, self.config.eval_batch_size, self.device)
        return self._decode(codes, DecodeOptions(method, beam, temperature, max_length, seed))

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

    def codes(self, inputs) -> torch.Tensor:
        """float32 (n, D): the code each input stands for (what `reconstruct` decodes)."""
        return input_codes(self.vae, self.data(inputs).split, self.config.eval_batch_size, self.device)

    def decode(self, codes: torch.Tensor, options: DecodeOptions = DecodeOptions()):
        return self._decode(torch.as_tensor(codes, dtype=torch.float32), options)

    @torch.no_grad()
    def _decode(self, codes: torch.Tensor, options: DecodeOptions):
        self.vae.eval()
        generator = options.generator()
        if self.kind == "image":  # PixelCNN ancestral sampling in raster order
            images = self.vae.decoder.sample(codes.to(self.device), generator)[:, 0]
            return images.cpu().numpy().astype(np.uint8)
        max_length = options.max_length or default_max_length(self.dataset)
        ids = decode_codes(self.vae.decoder, codes.to(self.device), options, max_length, generator)
        return [text_of(self.dataset, sentence) for sentence in ids]


def load(run_dir: str | Path = "runs/latest", checkpoint: str = "best", device: str = "auto",
         data_root: str | Path | None = None) -> Model:
    """A trained run (its `best` or `last` checkpoint) and the dataset it was trained on, in eval mode.
    A moved run finds the same data under `data_root`, its config's data_root or data/ (docs/runs.md);
    `model.trained.data_notes` says where. `run_dir` may be an export folder (`duvae export`), checked
    against its card's sha256 list first; without its data it reads through its own vocabulary."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    resolved = as_device(device)
    return Model(load_trained(Path(run_dir), checkpoint, device=resolved, data_root=data_root, needs_data=False),
                 resolved)
