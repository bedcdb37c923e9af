"""LSTM encoder and decoder for sentences (reference-spec §2.2-2.3).

A batch is `TextBatch(tokens, lengths)`: tokens (B, T) = `<s> w1 .. wn </s>` padded with 0, lengths
(B,) = n + 2. The decoder reads positions 0..n and predicts 1..n+1, so `</s>` is predicted and `<s>`
is not; padding is masked, so a padded batch gives exactly the per-sentence values of unpadded ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from duvae_cli.data.batching import TextBatch
from duvae_cli.models.gaussian import posterior_head
from duvae_cli.models.lstm import run_lstm


def reference_init(module: nn.Module, embedding: nn.Embedding) -> None:
    """The reference's initialisation: every parameter U(-0.01, 0.01), embeddings U(-0.1, 0.1)."""
    for parameter in module.parameters():
        nn.init.uniform_(parameter, -0.01, 0.01)
    nn.init.uniform_(embedding.weight, -0.1, 0.1)


class LSTMEncoder(nn.Module):
    """Embedding -> 1-layer LSTM -> last hidden state -> Linear(no bias) -> (mean, raw logvar), and
    with `context_dim` > 0 also a context vector h for a posterior flow (reference-spec §2.6).
    `init`: "reference" (every parameter U(-0.01, 0.01), embeddings U(-0.1, 0.1)), "flow" (the same
    with the LSTM's biases 0, the reference's IAF encoder) or "default" (PyTorch's, BN-style models)."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, latent_dim: int,
                 init: str = "reference", context_dim: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, 2 * latent_dim + context_dim, bias=False)
        self.sizes = [latent_dim, latent_dim] + ([context_dim] if context_dim else [])
        if init in ("reference", "flow"):
            reference_init(self, self.embed)
        elif init != "default":  # BN-style encoders keep PyTorch's defaults, as the reference does
            raise ValueError(f"init must be 'reference', 'flow' or 'default', got {init!r}")
        if init == "flow":  # the reference's IAF encoder (enc_flow.py reset_parameters): LSTM biases 0
            for name, parameter in self.lstm.named_parameters():
                if name.startswith("bias"):
                    torch.nn.init.zeros_(parameter)

    def forward(self, batch: TextBatch) -> tuple[torch.Tensor, ...]:
        """(mean, logvar), (B, D) each; with a context, (mean, logvar, context (B, C))."""
        states, _ = run_lstm(self.lstm, self.embed(batch.tokens))  # (B, T, H)
        # A unidirectional LSTM's state at the last real token ignores the padding after it.
        last = states[torch.arange(len(batch), device=states.device), batch.lengths - 1]  # (B, H)
        return posterior_head(self.head, last, self.sizes)  # in float32 under autocast too


class LSTMDecoder(nn.Module):
    """z sets the initial state (c0 = W z, h0 = tanh c0) and joins every input step; dropout 0.5 on
    the word embeddings and on the LSTM outputs; a bias-free vocabulary projection."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, latent_dim: int,
                 dropout_in: float = 0.5, dropout_out: float = 0.5):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.init_state = nn.Linear(latent_dim, hidden_dim, bias=False)
        self.lstm = nn.LSTM(embed_dim + latent_dim, hidden_dim, batch_first=True)
        self.dropout_in, self.dropout_out = nn.Dropout(dropout_in), nn.Dropout(dropout_out)
        self.project = nn.Linear(hidden_dim, vocab_size, bias=False)
        reference_init(self, self.embed)

    def logits(self, inputs: torch.Tensor, z: torch.Tensor, state=None):
        """inputs (N, T) token ids, z (N, D) -> logits (N, T, V) and the final LSTM state."""
        embedded = self.dropout_in(self.embed(inputs))  # (N, T, E)
        steps = torch.cat([embedded, z.unsqueeze(1).expand(-1, inputs.shape[1], -1)], dim=-1)
        if state is None:
            c0 = self.init_state(z).unsqueeze(0)  # (1, N, H)
            state = (torch.tanh(c0), c0)
        outputs, state = run_lstm(self.lstm, steps, state)
        return self.project(self.dropout_out(outputs)), state

    def log_prob(self, batch: TextBatch, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats per sentence. z (B, D) -> (B,), or z (B, K, D) -> (B, K)."""
        samples = z.dim() == 3
        B, K = len(batch), (z.shape[1] if samples else 1)
        # Trim a shard's padding on the CPU; on a GPU reading the length would wait for the device,
        # and the padded positions are masked anyway (the same values, module docstring).
        tokens = batch.tokens if batch.tokens.is_cuda else batch.tokens[:, : int(batch.lengths.max())]
        if samples:
            tokens = tokens.repeat_interleave(K, dim=0)  # (B*K, T), sample-major within example
        logits, _ = self.logits(tokens[:, :-1], z.reshape(B * K, -1))
        targets = tokens[:, 1:]
        # Rows of the flattened (B*K*(T-1), V) logits: log-softmax over contiguous memory.
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                              reduction="none").view_as(targets)  # (B*K, T-1)
        steps = torch.arange(targets.shape[1], device=targets.device)
        mask = steps < (batch.lengths - 1).repeat_interleave(K).unsqueeze(1)
        log_p = -(nll * mask).sum(-1)
        return log_p.view(B, K) if samples else log_p
