"""LIDVAE (Wang, Blei & Cunningham, NeurIPS 2021): the plain ELBO with a decoder whose likelihood
parameters are an injective function of z, so the exact posterior cannot equal the prior (no
posterior collapse in the model itself). docs/training.md, "LIDVAE and IL-LIDVAE".

The decoders are models/injective.py (text: an LSTM that never sees z, logits g([h_t ; z]); images: a
z-free PixelCNN plus the per-pixel offset g(z)), their map g = grad Psi_2 o beta o grad Psi_1 is
models/icnn.py. The regularizer itself is the plain VAE's (no posterior reshaping, the true KL); it
only chooses the decoder (`decoder_for`, asked by config/build.py).
"""

from __future__ import annotations

from torch import nn

from duvae_cli.errors import UsageError
from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.images import image_size
from duvae_cli.models.injective import InjectiveLSTMDecoder, InjectivePixelCNNDecoder
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option

LID_OPTIONS = (
    Option("lid_hidden", int, 512, "Hidden width of the input-convex networks of the injective decoder.",
           range="[1, 16384]"),
    Option("lid_layers", int, 2, "Hidden layers of each input-convex network.", range="[1, 16]", flag=False),
)
_OFFICIAL = "lidvae-public (yixinwang, 8a0a6a5) "
LID_PRESETS = {
    "*": Preset(_OFFICIAL + "sequential_pytorch/src/text.py:63-64,315 (--kl_start 1.0, --warm_up 0, kl_weight = "
                "1.0) and mixture_tensorflow/src/image.py:157-158: KL weight 1 from the first step. Adam lr 1e-3 "
                "is ours: the official text runs' RMSprop lr 1e-2 (run_fit_textidvae_sweep.sh:15-27) diverged "
                "in their logs, and SGD lr 1 (duvae's text schedule) barely trains the decoder (measured: "
                "docs/training.md)", kl_start=1.0, warm_up=0.0, optimizer="adam", lr=1e-3),
    "synthetic": Preset(_OFFICIAL + "sequential_pytorch/src/config/config_synthetic.py:17-18", lid_hidden=128),
    "yahoo": Preset(_OFFICIAL + "sequential_pytorch/src/config/config_yahoo.py:17-18", lid_hidden=1024),
    "yelp": Preset(_OFFICIAL + "sequential_pytorch/src/config/config_yelp.py:18-19", lid_hidden=1024),
    "ptb": Preset("ours: yahoo's width (the same LSTM size)", lid_hidden=1024),
    "short-yelp": Preset("ours: its LSTM size", lid_hidden=512),
    "yelp-sentiment": Preset("ours: its LSTM size", lid_hidden=512),
    "omniglot": Preset(_OFFICIAL + "mixture_tensorflow/src/image.py:65-66", lid_hidden=512),
    "mnist": Preset(_OFFICIAL + "mixture_tensorflow/src/image.py:65-66", lid_hidden=512),
}


@register("lidvae")
class LIDVAE(Regularizer):
    """LIDVAE (Wang et al. 2021): the plain ELBO with an injective decoder (gradients of input-convex
    networks); presets switch annealing off (KL weight 1 from the first step), as the official runs."""

    options = LID_OPTIONS
    presets = LID_PRESETS
    capabilities = Capabilities()  # bf16 parity not measured: fp32 under `--precision auto`

    def __init__(self, latent_dim: int, lid_hidden: int = 512, lid_layers: int = 2):
        super().__init__()
        self.lid_hidden, self.lid_layers = lid_hidden, lid_layers

    def quadratics(self) -> tuple[float, float]:
        """(q_1, q_2): the weights of the quadratic terms of the latent-side and data-side potentials."""
        return 0.0, 0.0

    def decoder_for(self, config, kind: str, vocab_size: int) -> nn.Module:
        latent_q, data_q = self.quadratics()
        sizes = dict(lid_hidden=self.lid_hidden, lid_layers=self.lid_layers, latent_quadratic=latent_q,
                     data_quadratic=data_q)
        if kind == "image":
            spec = image_size(config.size)
            return InjectivePixelCNNDecoder(config.latent_dim, spec.decoder_channels, spec.decoder_kernels, **sizes)
        if vocab_size < config.hidden_dim + config.latent_dim:
            raise UsageError(f"--model {config.model}: the text decoder maps [h ; z] ({config.hidden_dim} + "
                             f"{config.latent_dim} numbers) injectively into one logit per word, which needs a "
                             f"vocabulary of at least {config.hidden_dim + config.latent_dim} (this one has "
                             f"{vocab_size})")
        return InjectiveLSTMDecoder(vocab_size, config.embed_dim, config.hidden_dim, config.latent_dim,
                                    config.dropout_in, config.dropout_out, **sizes)
