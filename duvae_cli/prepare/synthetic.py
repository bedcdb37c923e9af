"""The synthetic text corpus of DU-VAE §4.3, generated locally and identically on every machine.

He et al.'s generator (reference-spec §1.3) with the 5-component prior of design.md §2:
z ~ equal-weight mixture of 5 isotropic Gaussians (std 0.5) at (0,0), (2,2), (-2,2), (2,-2), (-2,-2);
a fixed random 1-layer LSTM (input = hidden = 100) with c0 = W z, h0 = tanh(c0); the first token is
uniform over the vocabulary; each later step feeds [embedding(previous token); z] and samples the next
token from softmax(W1 h + W2 z). All weights U(-1, 1) except W2 ~ U(-5, 5). Vocabulary 1,000 word
types "0".."999", 10 tokens per sentence, 16,000 / 2,000 / 2,000 sentences, label = component.

numpy float64 with one PCG64 stream drawn in a fixed order (parameters, components, noise, first
tokens, then one uniform per later token, step-major), so the bytes do not depend on torch or the platform's RNG.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from duvae_cli.data.store import SPECIALS, Built, SplitData
from duvae_cli.options import DEFAULT_SEED
from duvae_cli.progress import SILENT, Reporter

_CHUNK = 1000
MEANS = np.array([[0.0, 0.0], [2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = DEFAULT_SEED
    vocab: int = 1000
    length: int = 10
    hidden: int = 100  # embedding size = hidden size = 100
    std: float = 0.5
    sizes: tuple[int, int, int] = (16000, 2000, 2000)  # train, valid, test


class _Generator:
    """The fixed random LSTM; weights drawn from `rng` in a fixed order, all U(-1, 1) but W2."""

    def __init__(self, rng: np.random.Generator, vocab: int, hidden: int):
        u = lambda *shape, scale=1.0: rng.uniform(-scale, scale, size=shape)  # noqa: E731
        self.embed = u(vocab, hidden)
        w_ih = u(4 * hidden, hidden + 2)  # PyTorch LSTM layout: gates i, f, g, o; input [emb; z]
        self.w_x, self.w_xz = w_ih[:, :hidden], w_ih[:, hidden:]
        self.w_hh, b_ih, b_hh = u(4 * hidden, hidden), u(4 * hidden), u(4 * hidden)
        self.bias = b_ih + b_hh
        self.w_init = u(hidden, 2)  # c0 = W z
        self.w_out, self.w_z = u(vocab, hidden), u(vocab, 2, scale=5.0)  # logits = W1 h + W2 z

    def start(self, z: np.ndarray):
        """Initial (h, c) and the per-sentence constants: z's share of the gates and of the logits."""
        c = _times_z(z, self.w_init)  # (n, H): c0 = W z
        return np.tanh(c), c, _times_z(z, self.w_xz) + self.bias, _times_z(z, self.w_z)

    def step(self, prev: np.ndarray, h, c, z_gates, z_logits):
        """One LSTM step from the previous tokens (n,); returns h, c and the logits (n, V)."""
        gates = self.embed[prev] @ self.w_x.T + h @ self.w_hh.T + z_gates  # (n, 4H)
        i, f, g, o = np.split(gates, 4, axis=1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        return h, c, h @ self.w_out.T + z_logits


def _times_z(z: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """z @ weight.T for 2-d z, written out: exact and faster than a BLAS call with inner size 2."""
    return z[:, :1] * weight[:, 0] + z[:, 1:] * weight[:, 1]


def generate(config: SyntheticConfig, reporter: Reporter = SILENT):
    """(tokens (n, length) int64 word indices 0..vocab-1, labels (n,), z (n, 2) float64)."""
    rng = np.random.Generator(np.random.PCG64(config.seed))
    n = sum(config.sizes)
    net = _Generator(rng, config.vocab, config.hidden)
    labels = rng.integers(0, len(MEANS), size=n)
    z = MEANS[labels] + config.std * rng.standard_normal((n, 2))
    tokens = np.empty((n, config.length), dtype=np.int64)
    tokens[:, 0] = rng.integers(0, config.vocab, size=n)  # the first token is uniform
    uniforms = rng.random((config.length - 1, n))  # one per later token, drawn step-major
    with reporter.task("generating synthetic sentences", n) as task:
        for rows in range(0, n, _CHUNK):  # rows are independent; chunks keep the (rows, V) arrays in cache
            part = slice(rows, rows + _CHUNK)
            h, c, z_gates, z_logits = net.start(z[part])
            for t in range(1, config.length):
                h, c, logits = net.step(tokens[part, t - 1], h, c, z_gates, z_logits)
                tokens[part, t] = _sample(logits, uniforms[t - 1, part])
            task.advance(len(h))
    return tokens, labels, z


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _sample(logits: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from softmax(logits) per row, with one uniform per row."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    index = (cdf < (uniform * cdf[:, -1])[:, None]).sum(axis=1)
    return np.minimum(index, logits.shape[1] - 1)


def build_synthetic(spec, source, options, reporter: Reporter) -> Built:
    config = SyntheticConfig(seed=options.seed)
    tokens, labels, z = generate(config, reporter)
    ids = (tokens + len(SPECIALS)).astype(np.int32)  # word "k" has id k + 4
    built = Built(kind="text", splits={}, vocab=[*SPECIALS, *map(str, range(config.vocab))],
                  tokenizer="word", num_labels=len(MEANS))
    start = 0
    for name, size in zip(("train", "valid", "test"), config.sizes):
        part = slice(start, start + size)
        start += size
        built.splits[name] = SplitData(
            arrays={"tokens": ids[part].reshape(-1),
                    "offsets": np.arange(size + 1, dtype=np.int64) * config.length,
                    "labels": labels[part].astype(np.int64), "z": z[part].astype(np.float32)},
            source=f"generated, seed {config.seed}")
    generator = {**asdict(config), "means": MEANS.tolist(), "weights": "equal", "init": "U(-1,1), W2 U(-5,5)"}
    built.attrs["generator"] = json.dumps(generator)
    built.notes.append(f"generated locally (seed {config.seed}); the true z of every sentence is stored as `z`")
    return built
