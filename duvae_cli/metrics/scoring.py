"""log p(x | z) for many samples z per sentence: the inner loop of the importance-weighted bound.

`make_scorer(decoder)` returns a callable `scorer(batch, z)` with z (B, K, D) -> (B, K) in nats, and
`scorer.chunk_bytes(batch, rows, examples)`, the bytes one call on `rows` = (example x sample) rows
of `examples` sentences of the batch needs (the chunk planner keeps it under the memory budget).

For the LSTM decoder in eval mode, `LSTMScorer` computes exactly what `LSTMDecoder.log_prob` does
(same weights, no dropout) but spends its time where the FLOPs are (see docs/metrics.md):

- the K samples of a sentence share its tokens, so the word part of the LSTM input projection is
  computed once per (sentence, step), the z part once per (sentence, sample), not per token;
- the recurrence is one (rows, H) x (H, 4H) GEMM per step over all samples of all sentences;
- the vocabulary projection and log-softmax, ~75% of the FLOPs, run per step on blocks of ~500 rows
  into one reused buffer, keeping only each row's log-normaliser and target logit: the (rows, T, V)
  logits are never materialised. V is padded to a multiple of 16 for an aligned, faster GEMM;
- sentences are ordered longest first, so at step t only a prefix of rows is still inside its
  sentence and padding costs nothing.

Any other decoder (or one in training mode) goes through its own `log_prob` (`GenericScorer`), with
the decoder's own `chunk_bytes(rows)` memory estimate per row and predicted position where it has
one (the PixelCNN's and LIDVAE's decoders do).
"""

from __future__ import annotations

import torch

from duvae_cli.models.text import LSTMDecoder, TextBatch

FLOAT_BYTES = 4
BLOCK_ELEMENTS = 2**22  # logits per block on the CPU (16 MB, ~500 rows at V = 8411)


def make_scorer(decoder, block_rows: int | None = None):
    """The fastest exact scorer for `decoder` (call after `model.eval()`)."""
    if isinstance(decoder, LSTMDecoder) and not decoder.training:
        return LSTMScorer(decoder, block_rows)
    return GenericScorer(decoder)


class GenericScorer:
    """Any decoder with `log_prob(batch, z (B, K, D)) -> (B, K)`; memory estimated generously."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.cpu_rows = getattr(decoder, "cpu_chunk_rows", None)  # the decoder's best CPU chunk, if any
        project = getattr(decoder, "project", None)
        lstm = getattr(decoder, "lstm", None)
        self.vocab_size = getattr(project, "out_features", 1024)
        self.hidden_dim = getattr(lstm, "hidden_size", 1024)

    def __call__(self, batch, z: torch.Tensor) -> torch.Tensor:
        return self.decoder.log_prob(batch, z)

    def chunk_bytes(self, batch, rows: int, examples: int) -> int:
        if hasattr(self.decoder, "chunk_bytes"):  # the decoder's own estimate per row and predicted
            return self.decoder.chunk_bytes(rows) * _max_steps(batch)  # position (images: 1 "step")
        # per row and step: logits, their log-softmax and a transposed copy (3 V), LSTM state (10 H)
        steps = _max_steps(batch)
        return rows * steps * (3 * self.vocab_size + 10 * self.hidden_dim) * FLOAT_BYTES


def _max_steps(batch) -> int:
    return int(batch.lengths.max()) - 1 if isinstance(batch, TextBatch) else 1


def _gates_ifog(weight: torch.Tensor, hidden: int) -> torch.Tensor:
    """PyTorch stores LSTM gate rows as (i, f, g, o); reorder to (i, f, o, g) so the three sigmoid
    gates are one contiguous slice."""
    i, f, g, o = weight.detach().split(hidden, dim=0)
    return torch.cat([i, f, o, g], dim=0)


class LSTMScorer:
    """Exact `LSTMDecoder.log_prob` in eval mode, restructured for many samples per sentence."""

    def __init__(self, decoder: LSTMDecoder, block_rows: int | None = None):
        lstm, hidden = decoder.lstm, decoder.lstm.hidden_size
        embed_dim = decoder.embed.embedding_dim
        w_input = _gates_ifog(lstm.weight_ih_l0, hidden)  # (4H, E + D)
        self.embed = decoder.embed
        self.w_word = w_input[:, :embed_dim].t().contiguous()  # (E, 4H)
        self.w_latent = w_input[:, embed_dim:].t().contiguous()  # (D, 4H)
        self.bias = _gates_ifog(lstm.bias_ih_l0 + lstm.bias_hh_l0, hidden)  # (4H,)
        self.w_hidden = _gates_ifog(lstm.weight_hh_l0, hidden).t().contiguous()  # (H, 4H)
        self.w_init = decoder.init_state.weight.detach().t().contiguous()  # (D, H): c0 = W z
        vocab_size = decoder.project.out_features
        # (H, V) padded with zero columns to a multiple of 16: a row length of 8411 floats misaligns
        # every row of the logits and costs the GEMM ~30% on AVX-512; padded logits are set to -inf.
        padded = -(-vocab_size // 16) * 16
        self.w_vocab = decoder.project.weight.new_zeros(hidden, padded)
        self.w_vocab[:, :vocab_size] = decoder.project.weight.detach().t()
        self.hidden_dim, self.embed_dim, self.vocab_size = hidden, embed_dim, vocab_size
        on_gpu = self.w_vocab.is_cuda
        # CPU: ~500 rows at V = 8411, enough for an efficient GEMM (measured: 256 is slower,
        # 1024 no faster); GPU: larger.
        self.block_rows = block_rows or max(16, (2**26 if on_gpu else BLOCK_ELEMENTS) // padded)
        self._logits: torch.Tensor | None = None  # the (block_rows, padded V) buffer, reused

    def chunk_bytes(self, batch, rows: int, examples: int) -> int:
        """Working memory of one call: per-row state, per-sentence input gates, one logits block."""
        hidden, steps = self.hidden_dim, _max_steps(batch)
        per_row = 4 * hidden + 4 * hidden + 2 * hidden + 8  # gates, z gates, h and c, log p
        per_example = steps * (4 * hidden + self.embed_dim)
        block = min(rows, self.block_rows) * (self.w_vocab.shape[1] + hidden)
        return (rows * per_row + examples * per_example + block) * FLOAT_BYTES

    def __call__(self, batch: TextBatch, z: torch.Tensor) -> torch.Tensor:
        """z (B, K, D) -> log p(x | z) (B, K), nats per sentence."""
        n_examples, n_samples, _ = z.shape
        n_predicted = batch.n_predicted
        order = torch.argsort(n_predicted, descending=True, stable=True)  # longest first
        steps = n_predicted[order].tolist()
        tokens = batch.tokens[order, : steps[0] + 1]  # (B, S+1): <s> w1 .. wn </s> (padded)
        log_p = self._run(tokens, steps, z[order].reshape(n_examples * n_samples, -1), n_samples)
        out = torch.empty_like(log_p.view(n_examples, n_samples))
        out[order] = log_p.view(n_examples, n_samples)
        return out

    def _run(self, tokens: torch.Tensor, steps: list[int], z: torch.Tensor, n_samples: int):
        """tokens (B, S+1) longest first, z (B*K, D) example-major -> log p (B*K,)."""
        n_examples, hidden = tokens.shape[0], self.hidden_dim
        n_steps = steps[0]
        word = self.embed(tokens[:, :n_steps]).reshape(n_examples * n_steps, -1)
        word_gates = torch.addmm(self.bias, word, self.w_word).view(n_examples, n_steps, 4 * hidden)
        latent_gates = (z @ self.w_latent).view(n_examples, n_samples, 4 * hidden)
        cell = z @ self.w_init  # (B*K, H): c0 = W z, h0 = tanh(c0)
        state = torch.tanh(cell)
        gates = torch.empty(len(z), 4 * hidden, dtype=z.dtype, device=z.device)
        log_p = torch.zeros(len(z), dtype=z.dtype, device=z.device)
        active = n_examples
        for t in range(n_steps):
            while steps[active - 1] <= t:  # sentences that have ended drop off the end
                active -= 1
            rows = active * n_samples
            g = gates[:rows]
            torch.add(latent_gates[:active], word_gates[:active, t].unsqueeze(1),
                      out=g.view(active, n_samples, 4 * hidden))
            g.addmm_(state[:rows], self.w_hidden)  # + h_{t-1} W_hh: one GEMM for all rows
            g[:, : 3 * hidden].sigmoid_()  # i, f, o
            g[:, 3 * hidden:].tanh_()  # g
            c, h = cell[:rows], state[:rows]
            c.mul_(g[:, hidden: 2 * hidden]).addcmul_(g[:, :hidden], g[:, 3 * hidden:])  # c = f c + i g
            torch.tanh(c, out=h)
            h.mul_(g[:, 2 * hidden: 3 * hidden])  # h = o tanh(c)
            targets = tokens[:active, t + 1].repeat_interleave(n_samples)  # (rows,)
            self._add_token_log_probs(h, targets, log_p[:rows])
        return log_p

    def _add_token_log_probs(self, h: torch.Tensor, targets: torch.Tensor, log_p: torch.Tensor):
        """log_p += log softmax(h W)[target], block by block: one logsumexp per row, in place."""
        needed = min(len(h), self.block_rows)
        if self._logits is None or len(self._logits) < needed:
            self._logits = h.new_empty(needed, self.w_vocab.shape[1])
        for start in range(0, len(h), self.block_rows):
            rows = h[start: start + self.block_rows]
            logits = torch.mm(rows, self.w_vocab, out=self._logits[: len(rows)])  # (r, V padded)
            logits[:, self.vocab_size:] = float("-inf")
            target = logits.gather(1, targets[start: start + len(rows), None]).squeeze(1)
            peak = logits.amax(1, keepdim=True)
            normaliser = logits.sub_(peak).exp_().sum(1).log_().add_(peak.squeeze(1))
            log_p[start: start + len(rows)] += target - normaliser
