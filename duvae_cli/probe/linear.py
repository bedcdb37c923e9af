"""The linear probe: one `nn.Linear(latent, n_classes)` trained with cross-entropy on frozen features.

The schedule is the reference's (reference-spec §6.1): SGD with lr 1 and momentum 0 on batch-mean
losses of 16 examples, gradient norm clipped at 5, up to 100 epochs; after every epoch the validation
loss is computed, the best weights are kept, and after `patience` (2) epochs without improvement the
lr is halved and the best weights reloaded; the 5th halving stops training. The probe with the best
validation loss is returned. Deviation: the reference groups batches by sentence length and skips
batches of one example; here the labelled examples are shuffled into batches and a last batch of one
joins the previous one, so every labelled example is used.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ProbeSettings:
    lr: float = 1.0
    batch_size: int = 16
    max_epochs: int = 100
    patience: int = 2  # epochs without a better validation loss before the lr is halved
    lr_decay: float = 0.5
    max_decays: int = 5
    clip: float = 5.0

    def to_dict(self) -> dict:
        return {"optimizer": "sgd", "momentum": 0.0, **asdict(self)}


@dataclass
class ProbeFit:
    weight: np.ndarray  # (K, D)
    bias: np.ndarray  # (K,)
    valid_loss: float  # mean cross-entropy (nats) of the returned probe on the validation set
    epochs: int  # epochs trained

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.argmax(features @ self.weight.T + self.bias, axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == labels))


def _batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    batches = list(order.split(size))
    if len(batches) > 1 and len(batches[-1]) < 2:  # a batch of one joins the previous
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _init(layer: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, U(-1/sqrt(D), 1/sqrt(D)), drawn from `generator`."""
    bound = 1.0 / math.sqrt(layer.in_features)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


@contextlib.contextmanager
def _one_thread():
    """The probe's matrices are tiny: extra intra-op threads only add synchronisation (and, on a busy
    machine, seconds of spinning), so it runs on one thread and restores the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, valid_x: np.ndarray, valid_y: np.ndarray,
              n_classes: int, seed: int, settings: ProbeSettings = ProbeSettings()) -> ProbeFit:
    """Train the probe on (train_x (n, D), train_y (n,)); early stopping on (valid_x, valid_y)."""
    with _one_thread():
        return _fit(train_x, train_y, valid_x, valid_y, n_classes, seed, settings)


def _fit(train_x, train_y, valid_x, valid_y, n_classes: int, seed: int, settings: ProbeSettings) -> ProbeFit:
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.as_tensor(train_x, dtype=torch.float32), torch.as_tensor(train_y, dtype=torch.long)
    vx, vy = torch.as_tensor(valid_x, dtype=torch.float32), torch.as_tensor(valid_y, dtype=torch.long)
    layer = nn.Linear(x.shape[1], n_classes)
    _init(layer, generator)
    lr, best_loss, ref_loss, best_state = settings.lr, math.inf, math.inf, _copy(layer)
    not_improved, decays, epoch = 0, 0, 0
    while epoch < settings.max_epochs and decays < settings.max_decays:
        epoch += 1
        for rows in _batches(len(x), settings.batch_size, generator):
            _sgd_step(layer, F.cross_entropy(layer(x[rows]), y[rows]), lr, settings.clip)
        loss = _loss(layer, vx, vy)
        if loss < best_loss:
            best_loss, best_state = loss, _copy(layer)
        if loss > ref_loss:  # plateau: as the reference's lr decay (and loop.py)
            not_improved += 1
            if not_improved >= settings.patience:
                lr, decays, not_improved, ref_loss = lr * settings.lr_decay, decays + 1, 0, loss
                layer.load_state_dict(best_state)
        else:
            not_improved, ref_loss = 0, loss
    layer.load_state_dict(best_state)
    return ProbeFit(layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy(),
                    best_loss, epoch)


def _sgd_step(layer: nn.Linear, loss: torch.Tensor, lr: float, clip: float) -> None:
    """Plain SGD (momentum 0) after clipping the gradient norm; what torch.optim.SGD does, without
    its per-call overhead (the probe takes thousands of tiny steps)."""
    layer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(layer.parameters(), clip)
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(parameter.grad, alpha=-lr)


@torch.no_grad()
def _loss(layer: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(F.cross_entropy(layer(x), y))


def _copy(layer: nn.Linear) -> dict:
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}
