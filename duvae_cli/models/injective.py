"""Decoders whose likelihood parameters are an injective function of z (LIDVAE, Wang, Blei &
Cunningham, NeurIPS 2021; IL-LIDVAE, Kinoshita et al., ICML 2023: methods/lidvae.py,
methods/il_lidvae.py). docs/training.md, "LIDVAE and IL-LIDVAE".

The injective map is g = grad Psi_2 o beta o grad Psi_1 (models/icnn.py): gradients of input-convex
networks (Brenier maps) around a full-rank linear map; quadratic weights (q_1, q_2) > 0 make it
inverse-Lipschitz (IL-LIDVAE).

- Text (the official "LIDSVAE", lidvae-public `dec_lstm.py`): the LSTM reads the word embeddings
  only and starts from a learned constant state (c0, h0 = tanh c0) that does not see z; at every
  step the logits are g([h_t ; z]) : R^(H+D) -> R^V. For a fixed LSTM state the map z -> logits is
  injective. The LSTM does not depend on z, so `log_prob` runs it once per sentence for all K samples.
- Images (ours; the official image code is a non-autoregressive Gaussian-mixture VAE): a z-free
  PixelCNN a(x_<i) plus an additive offset, logit_i = a_i(x_<i) + g_i(z), g : R^D -> R^784. Equal
  distributions p(x|z1) = p(x|z2) give equal conditionals on every context, so g(z1) = g(z2) and
  z1 = z2: p(x|z) is injective in z.

Neither subclasses `LSTMDecoder` / uses its latent maps: the IW scorer's fast path for the plain LSTM
decoder (metrics/scoring.py) must not take them, and any z-path into the PixelCNN would void the proof.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from duvae_cli.data.batching import TextBatch
from duvae_cli.models.icnn import BrenierMap
from duvae_cli.models.lstm import run_lstm
from duvae_cli.models.pixelcnn import PixelCNNDecoder
from duvae_cli.models.text import reference_init

FLOAT_BYTES = 4


class InjectiveLSTMDecoder(nn.Module):
    """p(x|z) for sentences with logits g([h_t ; z]); the LSTM never sees z (module docstring)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, latent_dim: int,
                 dropout_in: float = 0.5, dropout_out: float = 0.5, lid_hidden: int = 512, lid_layers: int = 2,
                 latent_quadratic: float = 0.0, data_quadratic: float = 0.0):
        super().__init__()
        if vocab_size < hidden_dim + latent_dim:
            raise ValueError(f"the injective text decoder maps [h ; z] (hidden {hidden_dim} + latent {latent_dim}) "
                             f"into the {vocab_size} logits: it needs a vocabulary at least that large")
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.initial_cell = nn.Parameter(torch.empty(hidden_dim))  # c0, the same for every sentence
        self.dropout_in, self.dropout_out = nn.Dropout(dropout_in), nn.Dropout(dropout_out)
        reference_init(self, self.embed)
        with torch.no_grad():  # the official c0 = W 1 with W (H, D) ~ U(-0.01, 0.01)
            self.initial_cell.copy_(torch.empty(hidden_dim, latent_dim).uniform_(-0.01, 0.01).sum(1))
        widths = (lid_hidden,) * lid_layers
        self.brenier = BrenierMap(hidden_dim + latent_dim, vocab_size, widths, widths, latent_quadratic,
                                  data_quadratic)
        self.vocab_size, self.hidden_dim, self.lid_hidden, self.lid_layers = vocab_size, hidden_dim, lid_hidden, lid_layers

    def _states(self, inputs: torch.Tensor, state=None):
        """LSTM outputs (N, T, H) after output dropout, and the final state; z plays no part."""
        if state is None:
            c0 = self.initial_cell.expand(1, inputs.shape[0], -1).contiguous()  # (1, N, H)
            state = (torch.tanh(c0), c0)
        outputs, state = run_lstm(self.lstm, self.dropout_in(self.embed(inputs)), state)
        return self.dropout_out(outputs), state

    def step_logits(self, outputs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """LSTM outputs (..., T, H), z (..., D) -> g([h_t ; z]) (..., T, V)."""
        z = z.unsqueeze(-2).expand(*outputs.shape[:-1], z.shape[-1])
        return self.brenier(torch.cat([outputs, z], dim=-1))

    def logits(self, inputs: torch.Tensor, z: torch.Tensor, state=None):
        """inputs (N, T) token ids, z (N, D) -> logits (N, T, V) and the final LSTM state (use/decode.py)."""
        outputs, state = self._states(inputs, state)
        return self.step_logits(outputs, z), state

    def log_prob(self, batch: TextBatch, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats per sentence. z (B, D) -> (B,), or z (B, K, D) -> (B, K): the LSTM
        runs once per sentence (its states do not depend on z) and the map once per sample and step."""
        samples = z.dim() == 3
        tokens = batch.tokens if batch.tokens.is_cuda else batch.tokens[:, : int(batch.lengths.max())]
        outputs, _ = self._states(tokens[:, :-1])  # (B, T, H)
        if samples:
            outputs = outputs.unsqueeze(1).expand(-1, z.shape[1], -1, -1)  # (B, K, T, H)
        logits = self.step_logits(outputs, z)  # (B, [K,] T, V)
        targets = tokens[:, 1:].unsqueeze(1).expand(*logits.shape[:-1]) if samples else tokens[:, 1:]
        nll = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1),
                              reduction="none").view_as(targets)
        steps = torch.arange(targets.shape[-1], device=targets.device)
        mask = steps < (batch.lengths - 1).view(-1, *(1,) * (targets.dim() - 1))
        return -(nll * mask).sum(-1)

    def chunk_bytes(self, rows: int) -> int:
        """Working memory (bytes) of `log_prob` per (example x sample) row and predicted position:
        the logits, their log-softmax and the map's vocabulary-sized gradients (4 V), the ICNNs'
        activations and backward terms (4 (layers + 2) x width) and the [h ; z] inputs."""
        floats = 4 * self.vocab_size + 4 * (self.lid_layers + 2) * self.lid_hidden + 4 * self.hidden_dim
        return rows * floats * FLOAT_BYTES


class InjectivePixelCNNDecoder(PixelCNNDecoder):
    """p(x|z) for binary images: logits = a z-free PixelCNN's + g(z) pixel by pixel (module docstring).
    The data-side ICNN's first layer is as wide as the image (784), as the official image code."""

    def __init__(self, latent_dim: int, channels: int, kernels: tuple[int, ...], lid_hidden: int = 512,
                 lid_layers: int = 2, latent_quadratic: float = 0.0, data_quadratic: float = 0.0,
                 image_side: int = 28):
        super().__init__(latent_dim, channels, kernels, latent_maps=0, image_size=image_side)
        pixels = image_side * image_side
        self.brenier = BrenierMap(latent_dim, pixels, (lid_hidden,) * lid_layers,
                                  (pixels,) + (lid_hidden,) * (lid_layers - 1), latent_quadratic, data_quadratic)
        self.lid_hidden, self.lid_layers = lid_hidden, lid_layers

    def offset(self, z: torch.Tensor) -> torch.Tensor:
        """g(z) as an image of logit offsets: z (N, D) -> (N, 1, H, W)."""
        side = self.image_size
        return self.brenier(z).view(-1, 1, side, side)

    def logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x (N, 1, h, W), the top h rows, z (N, D) -> logits (N, 1, h, W); exact for the rows that the
        first conv's reach allows, as the PixelCNN's (the offset is per pixel)."""
        return self.trunk(x) + self.offset(z)[:, :, : x.shape[2]]

    def chunk_bytes(self, rows: int) -> int:
        """The PixelCNN's estimate plus the map's activations per row (3 image-sized, 4 (layers + 2)
        hidden-sized vectors)."""
        pixels = self.image_size * self.image_size
        hidden = 4 * (self.lid_layers + 2) * max(pixels, self.lid_hidden)
        return super().chunk_bytes(rows) + rows * (3 * pixels + hidden) * FLOAT_BYTES
