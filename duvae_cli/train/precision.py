"""Mixed precision for training (`--precision fp32|bf16|fp16`, docs/distributed.md).

fp32 (the default) changes nothing. bf16 runs the forward pass under torch.autocast (CUDA or CPU):
matrix products and the LSTMs in bfloat16, losses and reductions in float32; bf16 has float32's
range, so no loss scaling. fp16 needs a GradScaler against underflowing gradients and a GPU (CPU
float16 kernels are slow or missing), so it is CUDA-only. Evaluation always runs in fp32: the
IW-NLL's log-weights and their logsumexp are what the reported numbers rest on.
"""

from __future__ import annotations

import contextlib

import torch

from duvae_cli.errors import UsageError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """How one training run does forward, backward and the optimizer step."""

    def __init__(self, name: str = "fp32", device: torch.device = torch.device("cpu")):
        if name not in PRECISIONS:
            raise UsageError(f"--precision {name!r}: choose one of: {', '.join(PRECISIONS)}")
        if name == "fp16" and device.type != "cuda":
            raise UsageError("--precision fp16: needs a CUDA device (fp16 autocast with loss scaling); "
                             "on the CPU use bf16")
        self.name, self.device, self.dtype = name, device, PRECISIONS[name]
        self.scaler = torch.amp.GradScaler(device.type) if name == "fp16" else None

    @property
    def full(self) -> bool:
        return self.dtype is None

    def autocast(self):
        """The context of the forward pass (the loss included), not of the backward."""
        if self.full:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradients back to true units before clipping (fp16)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step; fp16 skips it when a gradient overflowed and adapts the scale."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


FP32 = Precision()
