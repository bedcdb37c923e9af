"""The image networks: the PixelCNN is causal and a proper Bernoulli distribution, its masks have the
reference's structure, cropped and sample-batched calls agree with the plain one; the ResNet encoder
keeps the reference initialisation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from duvae_cli.models.images import IMAGE_SIZES, build_image_networks
from duvae_cli.models.pixelcnn import MaskedConv2d, PixelCNNDecoder, causal_mask


def _eval_decoder(size: str = "small", latent_dim: int = 4, seed: int = 0) -> PixelCNNDecoder:
    """A decoder in eval mode with random BN statistics (so no BN layer is a plain identity)."""
    torch.manual_seed(seed)
    spec = IMAGE_SIZES[size]
    decoder = PixelCNNDecoder(latent_dim, spec.decoder_channels, spec.decoder_kernels)
    for module in decoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1), module.running_var.uniform_(0.5, 2.0)
    return decoder.eval()


@pytest.mark.parametrize("size, pixels", [("small", 24), ("paper", 12)])
def test_the_logit_of_pixel_i_depends_on_no_pixel_at_or_after_i(size, pixels):
    decoder = _eval_decoder(size)
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(2, 1, 28, 28, generator=generator) < 0.3).float().requires_grad_(True)
    z = torch.randn(2, 4, generator=generator)
    logits = decoder.logits(x, z)  # (2, 1, 28, 28)
    chosen = [0, 27, 28, 783, *torch.randint(1, 783, (pixels - 4,), generator=generator).tolist()]
    for i in chosen:
        (grad,) = torch.autograd.grad(logits[0, 0].flatten()[i], x, retain_graph=True)
        raster = grad[0, 0].flatten()
        assert torch.all(raster[i:] == 0), f"pixel {i} sees a later pixel"
        assert torch.all(grad[1] == 0)  # eval mode: images of a batch are independent
        if i > 0:
            assert raster[:i].abs().sum() > 0, f"pixel {i} sees no earlier pixel"


def test_log_prob_is_a_normalised_bernoulli_distribution_over_all_images():
    """On a 3x3 image the 512 possible images have probabilities that sum to 1 for every z."""
    torch.manual_seed(0)
    decoder = PixelCNNDecoder(latent_dim=2, channels=8, kernels=(3, 3, 3), image_size=3).eval()
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(512, 1, 3, 3)
    with torch.no_grad():
        for z in torch.randn(3, 2):
            log_p = decoder.log_prob(images, z.expand(512, 2)).double()
            assert torch.all(log_p < 0)
            assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-5)
            probs = torch.sigmoid(decoder.logits(images, z.expand(512, 2)))
            assert torch.all((probs > 0) & (probs < 1))


def test_log_prob_sums_per_pixel_bernoulli_terms_and_batches_samples():
    decoder = _eval_decoder()
    x = (torch.rand(3, 1, 28, 28) < 0.4).float()
    z = torch.randn(3, 5, 4)
    with torch.no_grad():
        many = decoder.log_prob(x, z)  # (3, 5)
        single = torch.stack([decoder.log_prob(x, z[:, k]) for k in range(5)], dim=1)
        p = torch.sigmoid(decoder.logits(x, z[:, 0]))
    expected = (x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(many, single, atol=1e-3)
    assert torch.allclose(single[:, 0], expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("size", ["small", "paper"])
def test_skip_wiring_is_the_reference_one(size):
    """He et al.'s `PixelCNN.forward`, transcribed: before layer i > 2 add skip_{i-3}(output of layer
    i-3); after the last layer add the last skip of the output of layer n-3."""
    decoder = _eval_decoder(size)
    x, z = (torch.rand(2, 1, 28, 28) < 0.3).float(), torch.randn(2, 4)
    with torch.no_grad():
        maps = decoder.project(z).view(2, 4, 28, 28)
        layers, inputs, direct = [decoder.first, *decoder.blocks], torch.cat([x, maps], 1), []
        for i, layer in enumerate(layers):
            if i > 2:
                inputs = inputs + decoder.skips[i - 3](direct.pop(0))
            inputs = layer(inputs)
            direct.append(inputs)
        assert len(direct) == 3 and len(decoder.skips) == len(layers) - 2
        expected = decoder.head(inputs + decoder.skips[-1](direct.pop(0)))
        assert torch.allclose(decoder.logits(x, z), expected, atol=1e-5)


@pytest.mark.parametrize("include_centre", [False, True])
def test_masks_hide_the_centre_right_and_below_on_masked_channels_only(include_centre):
    mask = causal_mask(2, 5, 7, include_centre, masked_channels=1)
    pixel = mask[0, 0]
    assert pixel[:3].sum() == 21 and pixel[4:].sum() == 0  # rows above seen, rows below hidden
    assert pixel[3, :3].sum() == 3 and pixel[3, 4:].sum() == 0
    assert pixel[3, 3] == float(include_centre)  # mask A hides the centre, mask B shows it
    assert torch.all(mask[:, 1:] == 1)  # the latent maps are seen whole


def test_masked_conv_output_ignores_masked_inputs():
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, 5, include_centre=True)
    x = torch.randn(1, 3, 9, 9)
    changed = x.clone()
    changed[:, :, 4, 5:] += 1.0  # right of the centre pixel (4, 4)
    changed[:, :, 5:] += 1.0  # rows below
    assert torch.equal(conv(x)[..., 4, 4], conv(changed)[..., 4, 4])
    changed[:, :, 4, 4] += 1.0  # the centre itself: mask B sees it
    assert not torch.equal(conv(x)[..., 4, 4], conv(changed)[..., 4, 4])


@pytest.mark.parametrize("kernel, include_centre, masked", [(7, True, None), (5, True, None), (3, True, None),
                                                            (7, False, 1), (3, False, None)])
def test_masked_conv_is_the_full_convolution_with_the_masked_weight(kernel, include_centre, masked):
    """Cropped kernels (every input channel masked: the rows below the centre are zero) and the
    channels-last layout change only the float32 rounding: outputs and gradients equal those of a
    plain k x k convolution of the masked weight, and the masked entries get no gradient."""
    torch.manual_seed(0)
    conv = MaskedConv2d(6, 4, kernel, include_centre, masked_channels=masked)
    assert conv.rows == (kernel // 2 + 1 if masked is None else kernel)
    x = torch.randn(3, 6, 11, 9, requires_grad=True)
    out = conv(x)
    weight = conv.weight.detach().clone().requires_grad_(True)
    expected = torch.nn.functional.conv2d(x, weight * conv.mask, padding=kernel // 2)
    assert out.shape == expected.shape == (3, 4, 11, 9)
    assert torch.allclose(out, expected, atol=1e-5)
    grad = torch.randn_like(out)
    got_x, got_w = torch.autograd.grad(out, (x, conv.weight), grad)
    want_x, want_w = torch.autograd.grad(expected, (x, weight), grad)
    assert torch.allclose(got_x, want_x, atol=1e-5) and torch.allclose(got_w, want_w, atol=1e-4)
    assert torch.all(got_w[conv.mask == 0] == 0)


def test_eval_without_gradients_folds_batch_norm_into_the_convolutions():
    """The folded path (eval mode, no gradients: IW-NLL, sampling) computes the same logits as the
    module-by-module one, stays causal exactly, and follows changes of the weights and statistics."""
    decoder = _eval_decoder("small")
    x, z = (torch.rand(2, 1, 28, 28) < 0.3).float(), torch.randn(2, 4)
    expected = decoder.logits(x, z)  # gradients on: conv, BN, ELU one after the other
    with torch.no_grad():
        folded = decoder.logits(x, z)
        assert torch.allclose(folded, expected.detach(), atol=1e-4)
        changed = x.clone()
        changed[:, :, 10, 12:] = 1 - changed[:, :, 10, 12:]  # pixel (10, 12) and after it
        changed[:, :, 11:] = 1 - changed[:, :, 11:]
        again = decoder.logits(changed, z)
        assert torch.equal(again.flatten(2)[..., : 10 * 28 + 12], folded.flatten(2)[..., : 10 * 28 + 12])
        assert not torch.equal(again, folded)
        for module in decoder.modules():  # new statistics and weights: the cached fold is recomputed
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.mul_(2.0)
        decoder.blocks[0].main[1][0].weight.mul_(0.5)
        refolded = decoder.logits(x, z)
    with torch.enable_grad():
        assert torch.allclose(refolded, decoder.logits(x, z).detach(), atol=1e-4)
    assert not torch.allclose(refolded, folded, atol=1e-3)


def test_logits_of_cropped_rows_equal_the_full_image_ones():
    """What ancestral sampling relies on: row r needs only the top r + 1 + k0 // 2 rows."""
    decoder = _eval_decoder()
    x = (torch.rand(2, 1, 28, 28) < 0.3).float()
    z = torch.randn(2, 4)
    with torch.no_grad():
        full = decoder.logits(x, z)
        for row in (0, 5, 20):
            top = decoder.logits(x[:, :, : row + 4], z)
            assert torch.allclose(top[:, :, row], full[:, :, row], atol=1e-5)


def test_ancestral_samples_follow_the_model_distribution():
    """On 3x3 images: the frequencies of 10,000 samples match exp(log p(x|z)). Sampling noise gives a
    total variation of ~0.053 here; a sampler that ignored the pixel order would be far off (~0.5)."""
    torch.manual_seed(0)
    decoder = PixelCNNDecoder(latent_dim=2, channels=8, kernels=(3, 3, 3), image_size=3).eval()
    with torch.no_grad():
        decoder.head[-1].weight.mul_(4)  # sharper pixel probabilities: fewer likely images, less noise
    z = torch.randn(1, 2).expand(10_000, 2)
    drawn = decoder.sample(z, torch.Generator().manual_seed(3))
    assert torch.equal(drawn, decoder.sample(z, torch.Generator().manual_seed(3)))  # seeded
    codes = (drawn.flatten(1) * 2 ** torch.arange(8, -1, -1)).sum(1).long()  # image -> 0..511
    empirical = torch.bincount(codes, minlength=512).double() / len(codes)
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(512, 1, 3, 3)
    with torch.no_grad():
        model = decoder.log_prob(images, z[:512]).double().exp()
    assert 0.5 * (empirical - model).abs().sum().item() < 0.1


def test_encoder_reference_init_and_output_per_image():
    torch.manual_seed(0)
    encoder, _ = build_image_networks("paper", latent_dim=32)
    conv = encoder.blocks[1].main[0]  # 3x3, 64 -> 64
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.05)
    assert torch.all(encoder.head.bias == 0)
    encoder.eval()
    x = (torch.rand(3, 1, 28, 28) < 0.3).float()
    mean, logvar = encoder(x)
    alone, _ = encoder(x[:1])
    assert mean.shape == logvar.shape == (3, 32)
    assert torch.allclose(mean[:1], alone, atol=1e-5)  # eval mode: no batch coupling
