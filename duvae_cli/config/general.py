"""The general training options (not of one method): sizes, schedule, bookkeeping; and their
per-dataset presets (the paper's settings, reference-spec §2.1, §3.2).

Adding a general field is one `Option` line here (plus a `DATASET_PRESETS` entry if a dataset needs
another value). The method options live with their methods (duvae_cli/methods/, one file each).
"""

from __future__ import annotations

from duvae_cli.options import SEED, Option

# Upper bounds are sanity limits (a typo such as 1e20 fails here, in one line, instead of in torch):
SIZE = "[1, 16384]"  # embedding and LSTM sizes; the paper's largest is 1024

# Flags keep the names `duvae train` always had; `flag=False` fields are set with --set or --config.
# `{models}`, `{strategies}`, `{flows}` in a help text are filled with the registered names.
GENERAL: tuple[Option, ...] = (
    Option("dataset", str, "synthetic", "Prepared dataset name (data/NAME/dataset.h5)."),
    Option("model", str, "du", "Regularizer: {models}; an IAF posterior with any of them: --flow iaf."),
    # architecture (text: LSTM sizes; encoder and decoder share hidden_dim)
    Option("embed_dim", int, 512, "Word embedding size (text).", range=SIZE),
    Option("hidden_dim", int, 1024, "LSTM hidden size of encoder and decoder (text).", range=SIZE),
    Option("latent_dim", int, 32, "Latent dimensions.", range="[1, 4096]"),
    Option("dropout_in", float, 0.5, "Decoder dropout on the input embeddings (text).", range="[0, 1)",
           flag=False),
    Option("dropout_out", float, 0.5, "Decoder dropout on the LSTM outputs (text).", range="[0, 1)",
           flag=False),
    Option("size", str, "paper", "Image networks: paper (ResNet + 13-block PixelCNN) or small (fewer "
           "channels and blocks; CPU-sized).", choices=("paper", "small")),
    Option("flow", str, "none", "Posterior flow: none or {flows} (the {flow_models} models set it)."),
    # schedule (design.md §2)
    Option("epochs", int, 100, "Maximum epochs.", range="[1, 100000]"),
    Option("batch_size", int, 32, "Examples per batch (BatchNorm needs 2).", range="[2, 1000000]"),
    Option("optimizer", str, "sgd", "sgd (momentum 0, text) or adam (images).", choices=("sgd", "adam"),
           flag=False),
    Option("lr", float, 1.0, "Learning rate.", range="> 0"),
    Option("clip", float, 5.0, "Maximum global gradient norm.", range="> 0", flag=False),
    Option("kl_start", float, 0.0, "Initial KL weight.", range="[0, 1]"),
    Option("warm_up", float, 10.0, "Epochs for the KL weight to reach 1.", range=">= 0"),
    Option("anneal", str, "linear", "KL-weight schedule: linear (kl_start to 1 over --warm-up epochs, "
           "then 1) or cyclical (Fu et al. 2019: --cycles rises from kl_start to 1, each over the first "
           "--cycle-ratio of its cycle).", choices=("linear", "cyclical")),
    Option("cycles", int, 4, "Cycles M of the cyclical schedule over the run's planned steps.",
           range="[1, 100000]"),
    Option("cycle_ratio", float, 0.5, "Fraction R of each cycle over which the cyclical KL weight rises.",
           range="(0, 1]"),
    Option("patience", int, 5, "Epochs without improvement before the lr is halved.", range=">= 1",
           flag=False),
    Option("decay_from_epoch", int, 15, "Plateau halving only once this many epochs are done before "
           "the worse one, as the reference's 0-based `epoch >= 15` (3: from the 4th epoch; text 15, images 0).",
           range=">= 0", flag=False),
    Option("plateau_reference", str, "last", "Worse than the last non-worse loss (text) or the best "
           "so far (images).", choices=("last", "best"), flag=False),
    Option("lr_decay", float, 0.5, "Factor of the lr at each plateau.", range="(0, 1)", flag=False),
    Option("max_decays", int, 5, "Training stops after this many lr decays.", range=">= 1", flag=False),
    Option("train_examples", int, 0, "Train on the first N examples of the train split (0: all).",
           range="[0, 1000000000]"),
    Option("strategy", str, "standard", "How a batch updates the model: {strategies}; composes with "
           "any --model."),
    # bookkeeping
    SEED.but(help="Random seed (recorded)."),
    Option("device", str, "auto", "auto, cpu, cuda or cuda:N."),
    Option("checkpoint_every", int, 0, "Also save the last checkpoint every N steps (0: only at epoch ends).",
           range="[0, 1000000000]"),
    Option("precision", str, "auto", "auto (bf16 where the device has native bf16 matrix units and "
           "the model's bf16 parity is measured, else fp32), fp32, bf16 (autocast) or fp16 (CUDA).",
           choices=("auto", "fp32", "bf16", "fp16")),
    Option("eval_batch_size", int, 128, "Examples per validation batch.", range="[1, 1000000]", flag=False),
    Option("data_root", str, "data", "Workspace of prepared datasets.", flag=False),
)

# Paper sizes (reference-spec §2.1); ptb: the yahoo/yelp size, the usual choice for PTB text VAEs.
_TEXT_SMALL = dict(embed_dim=128, hidden_dim=512, latent_dim=32)
_TEXT_LARGE = dict(embed_dim=512, hidden_dim=1024, latent_dim=32)
# Images (reference-spec §3.2): Adam 1e-3, batch 50, patience 20 against the best loss, no epoch gate.
_IMAGES = dict(latent_dim=32, batch_size=50, optimizer="adam", lr=1e-3, patience=20, decay_from_epoch=0,
               plateau_reference="best", epochs=500)
DATASET_PRESETS: dict[str, dict] = {
    "synthetic": dict(embed_dim=50, hidden_dim=50, latent_dim=2, epochs=50),  # the reference's config_synthetic.py
    "short-yelp": dict(_TEXT_SMALL, epochs=100),
    "yelp-sentiment": dict(_TEXT_SMALL, epochs=100),
    "yahoo": dict(_TEXT_LARGE, epochs=100),
    "yelp": dict(_TEXT_LARGE, epochs=150),
    "ptb": dict(_TEXT_LARGE, epochs=100),
    "omniglot": dict(_IMAGES),
    "mnist": dict(_IMAGES),
}
