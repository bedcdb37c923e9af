"""Sentences from latent codes with the LSTM decoder: greedy, sampling and beam search.

`decoder.logits(inputs, z, state)` is run one token at a time from `<s>` (z sets the initial state and
joins every step, as in training). `<pad>` and `<s>` are never produced; `</s>` ends a sentence, and a
sentence is cut after `max_length` words. The decoder must be in eval mode (no dropout).
"""

from __future__ import annotations

from typing import Callable

import torch

from duvae_cli.data.store import BOS_ID, EOS_ID, PAD_ID

BANNED = [PAD_ID, BOS_ID]


@torch.no_grad()
def _step_by_step(decoder, z: torch.Tensor, max_length: int,
                  choose: Callable[[torch.Tensor], torch.Tensor]) -> list[list[int]]:
    """One token per step for every row of z (N, D); `choose` maps logits (N, V) to ids (N,)."""
    n = z.shape[0]
    tokens = torch.full((n, 1), BOS_ID, dtype=torch.long, device=z.device)
    out, done, state = [[] for _ in range(n)], [False] * n, None
    for _ in range(max_length):  # a sentence still open after max_length words is cut there
        logits, state = decoder.logits(tokens, z, state)
        logits = logits[:, -1].clone()
        logits[:, BANNED] = -float("inf")
        chosen = choose(logits)
        for i, token in enumerate(chosen.tolist()):
            if not done[i]:
                done[i] = token == EOS_ID
                if not done[i]:
                    out[i].append(token)
        if all(done):
            break
        tokens = chosen.unsqueeze(1)
    return out


def greedy(decoder, z: torch.Tensor, max_length: int) -> list[list[int]]:
    return _step_by_step(decoder, z, max_length, lambda logits: logits.argmax(-1))


def sample(decoder, z: torch.Tensor, max_length: int, generator: torch.Generator,
           temperature: float = 1.0) -> list[list[int]]:
    def draw(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(logits / temperature, dim=-1)
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)

    return _step_by_step(decoder, z, max_length, draw)


@torch.no_grad()
def beam_search(decoder, z: torch.Tensor, width: int, max_length: int) -> list[int]:
    """The highest total log-probability sentence for one code z (D,) found with `width` beams.
    Stops as soon as the best finished sentence beats every live beam (log-probs only decrease)."""
    live = [([], 0.0)]  # (words, log-prob)
    finished: list[tuple[list[int], float]] = []
    tokens = torch.full((1, 1), BOS_ID, dtype=torch.long, device=z.device)
    state = None
    for step in range(max_length + 1):
        logits, state = decoder.logits(tokens, z.expand(len(live), -1), state)
        logp = torch.log_softmax(logits[:, -1], dim=-1)  # (B, V)
        logp[:, BANNED] = -float("inf")
        if step == max_length:  # the last step may only end the sentence
            logp[:, [i for i in range(logp.shape[1]) if i != EOS_ID]] = -float("inf")
        total = torch.tensor([score for _, score in live], device=z.device)[:, None] + logp
        values, flat = total.view(-1).topk(min(2 * width, total.numel()))
        keep = []
        for value, index in zip(values.tolist(), flat.tolist()):
            beam, token = divmod(index, logp.shape[1])
            if token == EOS_ID:
                finished.append((live[beam][0], value))
            elif value > -float("inf") and len(keep) < width:
                keep.append((beam, token, value))
        best_done = max((score for _, score in finished), default=-float("inf"))
        if not keep or best_done >= keep[0][2]:
            break
        rows = torch.tensor([beam for beam, _, _ in keep], device=z.device)
        state = tuple(part[:, rows] for part in state)
        live = [(live[beam][0] + [token], value) for beam, token, value in keep]
        tokens = torch.tensor([[token] for _, token, _ in keep], device=z.device)
    return max(finished, key=lambda item: item[1])[0] if finished else live[0][0]
