"""Mixed precision for training (`--precision auto|fp32|bf16|fp16`, docs/training.md).

auto (the default) resolves once, when a run starts (`choose_precision`), to bf16 where the device has
native bf16 matrix units and every part of the model declares its bf16 training measured within seed
noise of fp32 (a method's `capabilities.bf16`, naming the measurement; benchmarks/precision_parity.py),
and to fp32 elsewhere; the resolved name is what config.json keeps, so a resumed run keeps its own precision.
fp32 changes nothing. bf16 runs the forward pass under torch.autocast (CUDA or CPU): matrix products
and the LSTMs in bfloat16, losses and reductions in float32, and the latent path (the posterior's
parameters, the regularizer, z, the KL) in float32 (models/vae.py); bf16 has float32's range, so no
loss scaling. fp16 needs a GradScaler against underflowing gradients and a GPU (CPU float16 kernels
are slow or missing), so it is CUDA-only. Evaluation always runs in fp32: the IW-NLL's log-weights
and their logsumexp are what the reported numbers rest on.
"""

from __future__ import annotations

import contextlib

import torch

from duvae_cli.errors import UsageError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 matrix units


def choose_precision(requested: str, device: torch.device, parity: tuple[bool, str]) -> tuple[str, str]:
    """The precision a run trains in, and why in a few words: the one place `--precision` is read.
    `auto` is bf16 where `device` has native bf16 matrix units and `parity` says the model's bf16
    training was measured within seed noise of fp32 (methods.bf16_parity), else fp32."""
    if requested not in ("auto", *PRECISIONS):
        raise UsageError(f"--precision {requested!r}: choose one of: auto, {', '.join(PRECISIONS)}")
    if requested == "fp16" and device.type != "cuda":
        raise UsageError("--precision fp16: needs a CUDA device (fp16 autocast with loss scaling); "
                         "on the CPU use bf16")
    if requested != "auto":
        return requested, "as asked"
    allowed, why = parity
    if not allowed:
        return "fp32", f"auto: {why}"
    if torch.get_default_dtype() != torch.float32:
        return "fp32", f"auto: the default dtype is {torch.get_default_dtype()}, not float32"
    hardware = native_bf16(device)
    if hardware is None:
        return "fp32", f"auto: no native bf16 matrix units on {device.type}"
    return "bf16", f"auto: {hardware}"


def native_bf16(device: torch.device) -> str | None:
    """What gives `device` native bf16 matrix products (a CPU flag, a CUDA capability), or None."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if major < 8 or not _cuda_bf16_lstm_works(device):
            return None
        return f"CUDA compute capability {major}.{minor}"
    if device.type == "cpu":
        flags = _cpu_flags()
        return next((flag for flag in CPU_BF16_FLAGS if flag in flags), None)
    return None


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _cuda_bf16_lstm_works(device: torch.device) -> bool:
    """One bf16 LSTM forward and backward on the device: some cuDNN builds refuse bf16 RNNs."""
    try:
        lstm = torch.nn.LSTM(8, 8, batch_first=True).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out, _ = lstm(torch.randn(2, 3, 8, device=device))
        out.float().sum().backward()
        torch.cuda.synchronize(device)
        return True
    except RuntimeError:
        return False


class Precision:
    """How one training run does forward, backward and the optimizer step."""

    def __init__(self, name: str = "fp32", device: torch.device = torch.device("cpu")):
        """`name` as `choose_precision` resolved it (fp32, bf16, fp16)."""
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

    def training(self):
        """The context of a whole training run: fp32 on CUDA trains with TF32 matrix products and
        convolutions (`duvae evaluate` runs outside it, in full fp32)."""
        return _tf32() if self.full and self.device.type == "cuda" else contextlib.nullcontext()

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


@contextlib.contextmanager
def _tf32():
    """TF32 for CUDA matmuls and cuDNN inside the block, the previous settings after it."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
