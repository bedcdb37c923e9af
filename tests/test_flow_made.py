"""The IAF posterior's maths (models/flow.py): MADE is autoregressive, the log-determinant is the
log |det| of the autograd Jacobian, and saturated gates make the flow the identity."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from duvae_cli.methods import build_flow
from duvae_cli.methods.iaf import GATE_BIAS, IAF, IAFBlock, MADE, made_masks


def random_flow(latent_dim: int, depth: int, width: int = 4, seed: int = 0) -> IAF:
    """An IAF in float64 whose gates are far from their init (sigma spread over (0, 1))."""
    torch.manual_seed(seed)
    flow = IAF(latent_dim, depth, width).double()
    with torch.no_grad():
        for block in flow.blocks:
            block.gate_bias.normal_(0.0, 1.5)
    return flow


def output_jacobians(made: MADE, z: torch.Tensor, context: torch.Tensor):
    """d m / d z and d s / d z summed in absolute value over a batch: (D, D) each, [output, input]."""
    def both(x):
        m, s = made(x, context)
        return torch.cat([m, s], -1)

    full = jacobian(both, z)  # (B, 2D, B, D): examples are independent
    per_example = torch.einsum("bobd->bod", full).abs().sum(0)  # (2D, D)
    dim = z.shape[-1]
    return per_example[:dim], per_example[dim:]


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_made_outputs_depend_only_on_earlier_dimensions(latent_dim):
    torch.manual_seed(latent_dim)
    made = MADE(latent_dim, hidden=12 * latent_dim, context_dim=2 * latent_dim).double()
    z = torch.randn(64, latent_dim, dtype=torch.float64)
    context = torch.randn(64, 2 * latent_dim, dtype=torch.float64)
    strictly_lower = torch.ones(latent_dim, latent_dim).tril(-1).bool()
    for name, grad in zip("ms", output_jacobians(made, z, context)):
        assert (grad[~strictly_lower] == 0).all(), f"{name}_d depends on z_d or a later dimension"
        assert (grad[strictly_lower] > 0).all(), f"{name}_d ignores an earlier dimension"


def test_masks_follow_the_degree_rules_and_are_the_same_for_every_block():
    first, second, third = made_masks(4, 16)
    assert first.shape == (16, 4) and second.shape == (16, 16) and third.shape == (8, 16)
    # the connectivity product counts paths input j -> output i: none may reach i from j >= i
    paths = third @ second @ first  # (2D, D)
    for half in paths.split(4):
        assert (half.triu() == 0).all()
    flow = IAF(4, flow_depth=3, flow_width=4)
    masks = [[layer.mask for layer in block.made.layers] for block in flow.blocks]
    assert all(torch.equal(a, b) for other in masks[1:] for a, b in zip(masks[0], other))


def test_context_reaches_every_output_that_has_inputs_below_it():
    torch.manual_seed(0)
    made = MADE(3, hidden=24, context_dim=6).double()
    z = torch.randn(32, 3, dtype=torch.float64)
    context = torch.randn(32, 6, dtype=torch.float64, requires_grad=True)
    m, s = made(z, context)
    for out in (m, s):
        grads = [torch.autograd.grad(out[:, d].sum(), context, retain_graph=True)[0].abs().sum()
                 for d in range(3)]
        assert grads[0] == 0 and grads[1] > 0 and grads[2] > 0  # output 1 is a learned constant


@pytest.mark.parametrize("latent_dim,depth", [(1, 1), (2, 2), (3, 3), (4, 2)])
def test_log_determinant_matches_autograd(latent_dim, depth):
    """log q(zT) - log q(z0) summed over coordinates = -log |det d zT / d z0|."""
    flow = random_flow(latent_dim, depth, seed=latent_dim + depth)
    context = torch.randn(2 * latent_dim, dtype=torch.float64)
    for trial in range(3):
        z0 = torch.randn(latent_dim, dtype=torch.float64)
        zt, log_q = flow(z0, context, torch.zeros(latent_dim, dtype=torch.float64))
        J = jacobian(lambda x: flow(x, context, torch.zeros_like(x))[0], z0)
        sign, log_abs_det = torch.linalg.slogdet(J)
        torch.testing.assert_close(-log_q.sum(), log_abs_det, rtol=1e-10, atol=1e-10)


def test_one_block_has_a_triangular_jacobian_with_the_gates_on_its_diagonal():
    torch.manual_seed(1)
    block = IAFBlock(4, hidden=16, context_dim=8).double()
    z, context = torch.randn(4, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    J = jacobian(lambda x: block(x, context)[0], z)
    _, log_gate = block(z, context)
    assert (J.triu(1) == 0).all()
    torch.testing.assert_close(J.diagonal(), log_gate.exp())


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_saturated_gates_make_the_flow_the_identity_up_to_the_reversals(depth):
    """sigma = 1: z is untouched and log q keeps the base density, coordinate by coordinate."""
    flow = random_flow(3, depth)
    with torch.no_grad():
        for block in flow.blocks:
            block.gate_bias.fill_(60.0)  # sigmoid(60) = 1 in float64
    z0, context = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 6, dtype=torch.float64)
    base = torch.randn(5, 3, dtype=torch.float64)
    zt, log_q = flow(z0, context, base)
    expected_z, expected_q = (z0, base) if depth % 2 == 0 else (z0.flip(-1), base.flip(-1))
    torch.testing.assert_close(zt, expected_z, rtol=0, atol=0)
    torch.testing.assert_close(log_q, expected_q, rtol=0, atol=1e-20)


def test_gates_start_at_bias_two_near_the_identity():
    flow = IAF(8, flow_depth=2, flow_width=2)
    for block in flow.blocks:
        assert torch.equal(block.gate_bias.detach(), torch.full((8,), GATE_BIAS))
    z0 = torch.randn(256, 8)
    with torch.no_grad():
        zt, log_q = flow(z0, torch.randn(256, 16), torch.zeros(256, 8))
    # -log q gains a mean log gate near log sigmoid(2) = -0.127 per block: a mild contraction
    assert abs(float(log_q.mean()) / 2 - math.log1p(math.exp(-2.0))) < 0.03


def test_build_flow_names_the_valid_choices():
    import duvae_cli

    assert build_flow("none", 4) is None
    default = duvae_cli.build_flow("iaf", 32)  # the network the CLI trains: the declared width, 60
    assert default.blocks[0].made.layers[0].out_features == 60 * 32 and len(default.blocks) == 2
    assert isinstance(build_flow("iaf", 4, flow_depth=3, flow_width=5), IAF)
    assert build_flow("iaf", 4, flow_depth=3, flow_width=5).blocks[0].made.layers[0].out_features == 20
    with pytest.raises(ValueError, match="none, iaf"):
        build_flow("maf", 4)
