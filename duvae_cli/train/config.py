"""Training configuration: one frozen dataclass, per-dataset presets with the paper's settings.

Resolution order (later wins): defaults < dataset preset < (dataset, model) preset < `--config`
file < `--set key=value` < explicit flags. The resolved config is saved as `config.json` in the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from duvae_cli.errors import UsageError


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "synthetic"
    model: str = "du"  # a key of duvae_cli.models.REGULARIZERS or of FLOW_MODELS
    # architecture (text: LSTM sizes; encoder and decoder share hidden_dim)
    embed_dim: int = 512
    hidden_dim: int = 1024
    latent_dim: int = 32
    dropout_in: float = 0.5
    dropout_out: float = 0.5
    size: str = "paper"  # image networks: "paper" or "small" (models/images.py); text: "paper" only
    # regularizer options (None = the regularizer's own default)
    gamma: float | None = None
    p: float | None = None  # DU keep probability
    beta: float | None = None
    fb_lambda: float | None = None
    delta: float | None = None
    mae_eta: float | None = None  # MAE diversity weight
    mae_gamma: float | None = None  # MAE smoothness weight
    alpha_scale: float = 1.0  # DU variance floor = alpha_scale / (2 pi e)
    dropout_during_warmup: bool = False  # DU: reference code keeps variance dropout off in warm-up
    floor_during_warmup: bool = False  # DU: reference code adds the floor alpha only once the KL weight is 1
    bn_eps: float = 1e-5
    # posterior flow (models/flow.py): "none" or "iaf"; MADE hidden units = flow_width x latent_dim
    flow: str = "none"
    flow_depth: int = 2
    flow_width: int = 60  # the paper's runs (reference README: --flow_width 60)
    # schedule (design.md §2)
    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 1.0
    clip: float = 5.0
    kl_start: float = 0.0
    warm_up: float = 10.0  # epochs for the KL weight to reach 1
    patience: int = 5  # epochs without improvement before the lr is halved
    decay_from_epoch: int = 15  # plateau halving only from this epoch on (text; images 0)
    plateau_reference: str = "last"  # worse than: "last" non-worse loss (text) or "best" so far (images)
    lr_decay: float = 0.5
    max_decays: int = 5
    # training strategy (train/strategies.py): "standard", "aggressive" (Agg-VAE) or "savi" (SA-VAE)
    strategy: str = "standard"
    agg_max_inner: int = 99  # aggressive: most encoder updates per batch (He et al.: sub_iter 1..99)
    agg_window: int = 15  # aggressive: inner steps per loss window (text 15, images 10)
    agg_mi: str = "batch"  # aggressive stop rule's validation MI: He et al.'s "batch" or the "whole"-set one
    svi_steps: int = 10  # savi: refinement steps K (He et al.'s setting; Kim et al. use 20)
    svi_lr: float = 1.0  # savi: refinement learning rate (SGD, momentum 0.5)
    # bookkeeping
    seed: int = 783435
    device: str = "auto"
    checkpoint_every: int = 0  # also save last.pt every N steps (0: only at epoch ends)
    precision: str = "fp32"  # fp32, bf16 (autocast, CPU or CUDA) or fp16 (CUDA, loss scaling)
    eval_batch_size: int = 128
    data_root: str = "data"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def short_hash(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:8]


# Paper sizes (reference-spec §2.1); ptb: the yahoo/yelp size, the usual choice for PTB text VAEs.
_TEXT_SMALL = dict(embed_dim=128, hidden_dim=512, latent_dim=32)
_TEXT_LARGE = dict(embed_dim=512, hidden_dim=1024, latent_dim=32)
DATASET_PRESETS: dict[str, dict] = {
    "synthetic": dict(embed_dim=50, hidden_dim=50, latent_dim=2, epochs=20),
    "short-yelp": dict(_TEXT_SMALL, epochs=100),
    "yelp-sentiment": dict(_TEXT_SMALL, epochs=100),
    "yahoo": dict(_TEXT_LARGE, epochs=100),
    "yelp": dict(_TEXT_LARGE, epochs=150),
    "ptb": dict(_TEXT_LARGE, epochs=100),
}
# Images (reference-spec §3.2): Adam 1e-3, batch 50, patience 20 against the best loss, no epoch gate.
_IMAGES = dict(latent_dim=32, batch_size=50, optimizer="adam", lr=1e-3, patience=20, decay_from_epoch=0,
               plateau_reference="best", epochs=500, agg_window=10)
IMAGE_DATASETS = ("omniglot", "mnist")
DATASET_PRESETS.update({name: dict(_IMAGES) for name in IMAGE_DATASETS})

# The paper's hyper-parameters (reference-spec §3.3-4): (gamma, p) for DU, gamma for BN, etc.
# beta-VAE uses a constant weight: annealing off.
_BETA = dict(kl_start=1.0, warm_up=0.0)
MODEL_PRESETS: dict[tuple[str, str], dict] = {
    ("yahoo", "du"): dict(gamma=0.6, p=0.8),
    ("yelp", "du"): dict(gamma=0.5, p=0.8),
    ("short-yelp", "du"): dict(gamma=0.5, p=0.8),  # the Table 2 classification model
    ("synthetic", "du"): dict(gamma=1.0, p=0.5),  # the reference's synthetic DU runs (gamma1.00, drop0.50)
    ("yahoo", "bn"): dict(gamma=0.6),
    ("yelp", "bn"): dict(gamma=0.6),
    ("short-yelp", "bn"): dict(gamma=0.6),
    ("synthetic", "bn"): dict(gamma=0.6),
    ("yahoo", "beta"): dict(_BETA, beta=0.4),
    ("yelp", "beta"): dict(_BETA, beta=0.4),
    ("short-yelp", "beta"): dict(_BETA, beta=0.4),
    ("synthetic", "beta"): dict(_BETA, beta=0.4),
    # MAE: (diversity, smoothness) weights; short-yelp = the paper's Yelp classification model
    ("yahoo", "mae"): dict(mae_eta=1.0, mae_gamma=0.2),
    ("yelp", "mae"): dict(mae_eta=2.0, mae_gamma=0.2),
    ("short-yelp", "mae"): dict(mae_eta=2.0, mae_gamma=0.2),
    ("synthetic", "mae"): dict(mae_eta=1.0, mae_gamma=0.2),
    **{(name, model): values for name in ("omniglot", "mnist") for model, values in (
        ("du", dict(gamma=0.5, p=0.9)), ("bn", dict(gamma=0.5)), ("beta", dict(_BETA, beta=0.8)),
        ("mae", dict(mae_eta=0.5, mae_gamma=0.2)))},
}
MODEL_DEFAULTS: dict[str, dict] = {
    "du": dict(gamma=0.5, p=0.8), "bn": dict(gamma=0.6), "beta": dict(_BETA, beta=0.4),
    "fb": dict(fb_lambda=0.1), "delta": dict(delta=0.1), "mae": dict(mae_eta=1.0, mae_gamma=0.2),
}

# Named flow models (reference-spec §2.6, §3.3, §4): the user-facing name -> the regularizer under an
# IAF posterior; `config.model` keeps the name, `build_regularizer` gets the regularizer.
FLOW_MODELS: dict[str, str] = {"iaf-fb": "fb", "iaf-bn": "bn", "du-iaf": "du"}
# The paper's values per dataset (yahoo / yelp / omniglot); the defaults are the yelp ones, which
# short-yelp, yelp-sentiment, ptb and synthetic take too. Flow width: the field's default, 60 (MADE
# hidden units = 60 x latent), everywhere.
MODEL_DEFAULTS.update({"iaf-fb": dict(flow="iaf", fb_lambda=0.25), "iaf-bn": dict(flow="iaf", gamma=0.7),
                       "du-iaf": dict(flow="iaf", gamma=0.6, p=0.7)})
MODEL_PRESETS.update({
    ("yahoo", "iaf-fb"): dict(fb_lambda=0.15), ("omniglot", "iaf-fb"): dict(fb_lambda=0.15),
    ("yahoo", "iaf-bn"): dict(gamma=0.6), ("omniglot", "iaf-bn"): dict(gamma=0.5),
    ("yahoo", "du-iaf"): dict(gamma=0.7, p=0.7), ("omniglot", "du-iaf"): dict(gamma=0.5, p=0.85),
})
# Agg-VAE on text as He et al. ran it (reference-spec §4): kl_start 0.1, lr halving after 2 epochs
# without improvement (decay_epoch 2). Applied when strategy == "aggressive" on a text dataset, after
# the model presets; a config file, --set or a flag still wins.
AGGRESSIVE_TEXT_PRESET = dict(kl_start=0.1, patience=2)



def regularizer_name(model: str) -> str:
    """The registered regularizer of a model name: itself, or the one under a named flow model."""
    return FLOW_MODELS.get(model, model)


def parse_set(items: list[str]) -> dict:
    """`key=value` strings (from `--set`) to a dict with values typed like the config field."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise UsageError(f"--set {item!r}: expected key=value with key one of: {', '.join(fields)}")
        out[key] = _coerce(key, raw.strip(), TrainConfig.__dataclass_fields__[key].default)
    return out


def _coerce(key: str, raw: str, default):
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float) or default is None:
            return None if raw.lower() == "none" else float(raw)
        return raw
    except ValueError:
        raise UsageError(f"--set {key}={raw}: not a valid {type(default).__name__}") from None


def load_config_file(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a JSON object of config fields")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"--config {path}: unknown field(s) {', '.join(unknown)}")
    return data


def resolve_config(dataset: str, model: str, flags: dict | None = None, config_file: Path | None = None,
                   sets: list[str] | None = None) -> TrainConfig:
    """Apply presets, then the config file, then `--set`, then explicit flags (None = unset)."""
    from duvae_cli.models import REGULARIZERS

    file_values = load_config_file(config_file) if config_file else {}
    dataset = (flags or {}).get("dataset") or file_values.get("dataset") or dataset
    model = (flags or {}).get("model") or file_values.get("model") or model
    if model not in REGULARIZERS and model not in FLOW_MODELS:
        raise UsageError(f"--model {model!r}: choose one of: {', '.join([*REGULARIZERS, *FLOW_MODELS])}")
    values: dict = {}
    values.update(DATASET_PRESETS.get(dataset, {}))
    values.update(MODEL_DEFAULTS.get(model, {}))
    values.update(MODEL_PRESETS.get((dataset, model), {}))
    sets_values = parse_set(sets or [])
    explicit = {k: v for k, v in (flags or {}).items() if v is not None}
    strategy = explicit.get("strategy", sets_values.get("strategy", file_values.get("strategy")))
    if strategy == "aggressive" and dataset not in IMAGE_DATASETS:
        values.update(AGGRESSIVE_TEXT_PRESET)
    values.update(file_values)
    values.update(sets_values)
    values.update(explicit)
    values.update(dataset=dataset, model=model)
    config = TrainConfig(**values)
    _validate(config)
    return config


def _strategy_checks(c: TrainConfig) -> list[tuple[bool, str]]:
    """The training strategy's options and the MAE weights (train/strategies.py, models/mae.py)."""
    from duvae_cli.train.strategies import STRATEGIES

    return [
        (c.strategy in STRATEGIES, f"--strategy {c.strategy!r}: choose one of: {', '.join(STRATEGIES)}"),
        (c.strategy != "savi" or c.flow == "none",
         f"--strategy savi refines a Gaussian posterior; it does not support --model {c.model} with an IAF "
         "posterior"),
        (c.strategy == "standard" or c.precision == "fp32",
         f"--strategy {c.strategy} runs in fp32 only; drop --precision {c.precision}"),
        (c.svi_steps >= 1, f"--svi-steps {c.svi_steps}: must be >= 1"),
        (c.svi_lr > 0, f"--svi-lr {c.svi_lr}: must be > 0"),
        (c.agg_max_inner >= 1, f"agg_max_inner {c.agg_max_inner}: must be >= 1"),
        (c.agg_window >= 1, f"agg_window {c.agg_window}: must be >= 1"),
        (c.agg_mi in ("batch", "whole"), f"agg_mi {c.agg_mi!r}: choose batch or whole"),
        (c.mae_eta is None or c.mae_eta >= 0, f"--mae-eta {c.mae_eta}: must be >= 0"),
        (c.mae_gamma is None or c.mae_gamma >= 0, f"--mae-gamma {c.mae_gamma}: must be >= 0"),
    ]


def _validate(c: TrainConfig) -> None:
    from duvae_cli.models.flow import FLOWS, NO_FLOW

    checks = [
        (c.p is None or 0 < c.p <= 1, f"--p {c.p}: the keep probability must be in (0, 1]"),
        (c.gamma is None or c.gamma > 0, f"--gamma {c.gamma}: must be > 0"),
        (c.batch_size >= 2, f"--batch-size {c.batch_size}: must be >= 2 (BatchNorm needs 2 examples)"),
        (c.epochs >= 1, f"--epochs {c.epochs}: must be >= 1"),
        (c.lr > 0, f"--lr {c.lr}: must be > 0"),
        (0 <= c.kl_start <= 1, f"--kl-start {c.kl_start}: must be in [0, 1]"),
        (c.warm_up >= 0, f"--warm-up {c.warm_up}: must be >= 0"),
        (c.latent_dim >= 1, f"--latent-dim {c.latent_dim}: must be >= 1"),
        (c.optimizer in ("sgd", "adam"), f"optimizer {c.optimizer!r}: choose sgd or adam"),
        (c.size in ("paper", "small"), f"--size {c.size!r}: choose paper or small"),
        (c.plateau_reference in ("last", "best"),
         f"plateau_reference {c.plateau_reference!r}: choose last or best"),
        (c.flow == NO_FLOW or c.flow in FLOWS, f"--flow {c.flow!r}: choose {NO_FLOW} or {', '.join(FLOWS)}"),
        (c.model not in FLOW_MODELS or c.flow == "iaf",
         f"--model {c.model} is {FLOW_MODELS.get(c.model)} with an IAF posterior; --flow {c.flow} "
         f"contradicts it (use --model {FLOW_MODELS.get(c.model)})"),
        (c.flow_depth >= 1, f"--flow-depth {c.flow_depth}: must be >= 1"),
        (c.flow_width >= 1, f"--flow-width {c.flow_width}: must be >= 1"),
        (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:"),
         f"--device {c.device!r}: choose auto, cpu or cuda"),
        *_strategy_checks(c),
        (c.precision in ("fp32", "bf16", "fp16"), f"--precision {c.precision!r}: choose fp32, bf16 or fp16"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
