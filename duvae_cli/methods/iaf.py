"""Inverse autoregressive flow posteriors (Kingma et al. 2016) as the DU-VAE code builds them
(reference-spec §2.6). Used by `du-iaf`, `iaf-fb` and `iaf-bn` (any regularizer + `--flow iaf`).

q(z|x): z0 = mu0 + sigma0 eps, eps ~ N(0, I), is the encoder's Gaussian after the regularizer (BN,
DU's dropout and floor act there, exactly as without a flow); then `depth` x [IAF block, reverse the
dimensions] (the last reversal too, so an even depth ends in the original order). One block, with
the encoder's context vector h (2 x latent):

    (m, s) = MADE(z, h)                  m_d and s_d depend on z_<d only
    sigma  = sigmoid(s + b)              b: learnable per-dimension gate bias, initialised to 2
    z     <- sigma z + (1 - sigma) m     (Kingma et al. Eq. 14)

The Jacobian of a block is triangular with diagonal sigma (a reversal has |det| = 1), so

    log q(zT|x) = log N(z0; mu0, sigma0^2) - sum_blocks sum_d log sigma_d.

The flow carries log q per coordinate: each coordinate keeps its own base term and its own log
gates through the reversals, so `log_q[..., d]` belongs to zT_d and the per-dimension Monte Carlo
KL, log q_d - log N(zT_d; 0, 1), is what free bits clamps (`fb` on a flow).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from duvae_cli.methods.registry import Capabilities, Preset, register_flow, register_flow_model
from duvae_cli.options import Option

GATE_BIAS = 2.0  # sigmoid(2) = 0.88: every block starts close to the identity


def made_masks(latent_dim: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The masks (out, in) of MADE's three layers D -> H -> H -> 2D, from a fixed RandomState(0), so
    every block gets the same ones. Degrees: inputs 1..D, hidden units random in [1, D-1] (1 when
    D = 1); input->hidden and hidden->hidden connect when degree_out >= degree_in, hidden->output
    when degree_out > degree_in. Outputs are (m, s), each with degrees 1..D: output d sees z_<d only."""
    rng = np.random.RandomState(0)
    inputs = np.arange(1, latent_dim + 1)
    first = rng.randint(1, max(latent_dim, 2), size=hidden)
    second = rng.randint(1, max(latent_dim, 2), size=hidden)
    outputs = np.tile(inputs, 2)
    masks = (first[:, None] >= inputs[None, :], second[:, None] >= first[None, :],
             outputs[:, None] > second[None, :])
    return tuple(torch.from_numpy(m.astype(np.float32)) for m in masks)


class MaskedLinear(nn.Linear):
    """nn.Linear whose weight is multiplied by a fixed 0/1 mask (out, in) at every call."""

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask, persistent=False)  # a function of the shape: not saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder (Germain et al. 2015) z (..., D), context h (..., C) -> (m, s) (..., D) each,
    with ReLU between three masked layers; h enters the first layer through a bias-free Linear."""

    def __init__(self, latent_dim: int, hidden: int, context_dim: int):
        super().__init__()
        first, second, third = made_masks(latent_dim, hidden)
        self.layers = nn.ModuleList([MaskedLinear(latent_dim, hidden, first),
                                     MaskedLinear(hidden, hidden, second),
                                     MaskedLinear(hidden, 2 * latent_dim, third)])
        self.context = nn.Linear(context_dim, hidden, bias=False)

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.layers[0](z) + self.context(context))  # context broadcasts over samples
        h = F.relu(self.layers[1](h))
        m, s = self.layers[2](h).chunk(2, dim=-1)
        return m, s


class IAFBlock(nn.Module):
    """One gated IAF step: z -> sigma z + (1 - sigma) m; returns the new z and log sigma (..., D)."""

    def __init__(self, latent_dim: int, hidden: int, context_dim: int):
        super().__init__()
        self.made = MADE(latent_dim, hidden, context_dim)
        self.gate_bias = nn.Parameter(torch.full((latent_dim,), GATE_BIAS))

    def forward(self, z: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, s = self.made(z, context)
        s = s + self.gate_bias
        gate = torch.sigmoid(s)
        return gate * z + (1 - gate) * m, F.logsigmoid(s)  # logsigmoid: stable for saturated gates


@register_flow("iaf")
class IAF(nn.Module):
    """`depth` IAF blocks with a dimension reversal after each; MADE hidden size = width x latent_dim
    (the paper's runs use 60, the reference README's commands; its text_IAF.py default is 2)."""

    options = (Option("flow_depth", int, 2, "Number of IAF blocks.", range=">= 1", always=True),
               Option("flow_width", int, 60, "MADE hidden units = width x latent dim (the paper's runs: "
                      "60, the reference README's --flow_width 60).", range=">= 1", always=True))
    presets: dict[str, dict] = {}
    capabilities = Capabilities()  # bf16 parity not measured

    def __init__(self, latent_dim: int, flow_depth: int = 2, flow_width: int = 60):
        super().__init__()
        depth, width = flow_depth, flow_width
        if depth < 1 or width < 1:
            raise ValueError(f"flow depth and width must be >= 1, got {depth} and {width}")
        self.latent_dim, self.context_dim = latent_dim, 2 * latent_dim
        self.blocks = nn.ModuleList(IAFBlock(latent_dim, width * latent_dim, self.context_dim)
                                    for _ in range(depth))

    def forward(self, z: torch.Tensor, context: torch.Tensor, log_q: torch.Tensor):
        """z0 (..., D), context (..., C) broadcastable to z's leading shape, log_q (..., D) the
        per-coordinate log q(z0|x) -> zT (..., D) and the per-coordinate log q(zT|x) (..., D)."""
        for block in self.blocks:
            z, log_gate = block(z, context)
            log_q = log_q - log_gate  # change of variables: triangular Jacobian, diagonal sigma
            z, log_q = z.flip(-1), log_q.flip(-1)  # reversal: the next block conditions the other way
        return z, log_q


# The paper's values per dataset (reference-spec §2.6, §3.3, §4; yahoo / yelp / omniglot); the "*"
# ones are yelp's, which short-yelp, yelp-sentiment, ptb and synthetic take too. Flow width: the
# option's default, 60, everywhere (MADE hidden units = 60 x latent dim).
register_flow_model("iaf-fb", "fb", "iaf", {
    "*": Preset("IAF+FB lambda on Yelp (reference-spec §4)", flow="iaf", fb_lambda=0.25),
    "yahoo": Preset("IAF+FB lambda on Yahoo (reference-spec §4)", fb_lambda=0.15),
    "omniglot": Preset("IAF+FB lambda on Omniglot (reference-spec §4)", fb_lambda=0.15)},
    "free bits under an IAF posterior.")
register_flow_model("iaf-bn", "bn", "iaf", {
    "*": Preset("IAF+BN gamma on Yelp (reference-spec §2.6)", flow="iaf", gamma=0.7),
    "yahoo": Preset("IAF+BN gamma on Yahoo (reference-spec §2.6)", gamma=0.6),
    "omniglot": Preset("IAF+BN gamma on Omniglot (reference-spec §2.6)", gamma=0.5)},
    "BN-VAE under an IAF posterior.")
register_flow_model("du-iaf", "du", "iaf", {
    "*": Preset("paper's DU-IAF on Yelp (reference-spec §3.3)", flow="iaf", gamma=0.6, p=0.7),
    "yahoo": Preset("paper's DU-IAF on Yahoo (reference-spec §3.3)", gamma=0.7, p=0.7),
    "omniglot": Preset("paper's DU-IAF on Omniglot (reference-spec §3.3)", gamma=0.5, p=0.85)},
    "DU-VAE under an IAF posterior.")
