import math

import pytest
import torch

from radiodiff import PatchGANDiscriminator, VAEGANLoss
from radiodiff.losses import build_perceptual_loss, hinge_d_loss, vanilla_d_loss

GENERATOR_KEYS = {"total_loss", "logvar", "kl_loss", "nll_loss", "rec_loss", "d_weight", "disc_factor", "g_loss"}
DISCRIMINATOR_KEYS = {"disc_loss", "logits_real", "logits_fake"}


@pytest.fixture
def discriminator() -> PatchGANDiscriminator:
    torch.manual_seed(1)
    return PatchGANDiscriminator(ndf=8, n_layers=2)


def forward(vae, gain_maps):
    output = vae(gain_maps, sample_posterior=True, return_posterior=True, generator=torch.Generator().manual_seed(0))
    return output.sample, output.posterior


def test_nll_and_kl_follow_the_original_definitions(tiny_vae, gain_maps):
    loss_fn = VAEGANLoss(kl_weight=1e-3, disc_start=10**9, logvar_init=0.5)
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    loss, logs = loss_fn.generator_loss(gain_maps, reconstruction, posterior, step=0)

    error = gain_maps - reconstruction
    per_pixel = error.abs() + error**2
    nll = (per_pixel / math.exp(0.5) + 0.5).sum() / 2
    mean, logvar = posterior.mean, posterior.logvar
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum() / 2
    torch.testing.assert_close(logs["nll_loss"], nll.detach())
    torch.testing.assert_close(logs["kl_loss"], kl.detach())
    torch.testing.assert_close(logs["rec_loss"], per_pixel.mean().detach())
    torch.testing.assert_close(loss, nll + 1e-3 * kl)
    assert set(logs) == GENERATOR_KEYS


def test_clamp_reconstruction_scores_the_error_of_the_clamped_map_and_keeps_every_other_gradient():
    # targets: two buildings (-1), a street, the range's top; reconstructions past and short of them
    target = torch.tensor([-1.0, -1.0, 0.5, 0.2, 1.0, 1.0])
    reconstruction = torch.tensor([-1.7, -0.8, 0.7, -1.4, 1.3, 0.9], requires_grad=True)
    clamped = VAEGANLoss(l1_weight=0.0, clamp_reconstruction=True).reconstruction_loss(target, reconstruction)
    # the squared error of the reconstruction as evaluation reads it (clamped to [-1, 1]) ...
    expected = (target - reconstruction.detach().clamp(-1, 1)) ** 2
    expected[3] = (0.2 + 1.4) ** 2  # ... except past the range on a target inside it: the plain error, which keeps its pull
    torch.testing.assert_close(clamped.detach(), expected)
    clamped.sum().backward()
    assert reconstruction.grad[0] == 0 and reconstruction.grad[4] == 0  # past a building's -1, or past 1 on a 1
    assert reconstruction.grad[3] < 0  # pulled up, although clamping would stop it at -1
    plain = VAEGANLoss(l1_weight=0.0).reconstruction_loss(target, reconstruction.detach())
    torch.testing.assert_close(plain, (target - reconstruction.detach()) ** 2)
    assert plain[0] > 0 and plain[4] > 0


@pytest.mark.parametrize("l1_weight", [0.0, 0.25])
def test_l1_weight_scales_the_absolute_error_and_0_leaves_a_squared_error(tiny_vae, gain_maps, l1_weight):
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    _, logs = VAEGANLoss(disc_start=10**9, l1_weight=l1_weight).generator_loss(
        gain_maps, reconstruction, posterior, step=0
    )
    error = gain_maps - reconstruction
    per_pixel = l1_weight * error.abs() + error**2
    torch.testing.assert_close(logs["rec_loss"], per_pixel.mean().detach())
    torch.testing.assert_close(logs["nll_loss"], per_pixel.sum().detach() / 2)


def test_adaptive_weight_equals_a_hand_computation(tiny_vae, gain_maps, discriminator):
    loss_fn = VAEGANLoss(disc_start=0, disc_weight=0.5, kl_weight=1e-6)
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    last_layer = tiny_vae.last_layer_weight
    loss, logs = loss_fn.generator_loss(gain_maps, reconstruction, posterior, 5, discriminator, last_layer)

    error = gain_maps - reconstruction
    nll = (error.abs() + error**2).sum() / 2
    g_loss = -discriminator(reconstruction).mean()
    (nll_grad,) = torch.autograd.grad(nll, last_layer, retain_graph=True)
    (g_grad,) = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    expected = (nll_grad.norm() / (g_grad.norm() + 1e-4)).clamp(0, 1e4) * 0.5
    torch.testing.assert_close(logs["d_weight"], expected.detach())
    torch.testing.assert_close(logs["g_loss"], g_loss.detach())
    kl = posterior.kl().sum() / 2
    torch.testing.assert_close(loss, nll + 1e-6 * kl + expected.detach() * g_loss)


def test_adaptive_weight_is_clamped_at_1e4():
    weight = torch.ones(3, requires_grad=True)
    nll = (weight * 1e6).sum()
    g_loss = (weight * 1e-3).sum()
    assert VAEGANLoss.adaptive_weight(nll, g_loss, weight).item() == pytest.approx(1e4)


def test_disc_factor_switches_exactly_at_disc_start(tiny_vae, gain_maps, discriminator):
    loss_fn = VAEGANLoss(disc_start=100, disc_factor=0.7)
    assert [loss_fn.disc_factor_at(step) for step in (0, 99, 100, 101)] == [0.0, 0.0, 0.7, 0.7]
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    last_layer = tiny_vae.last_layer_weight
    _, before = loss_fn.generator_loss(gain_maps, reconstruction, posterior, 99, discriminator, last_layer)
    _, after = loss_fn.generator_loss(gain_maps, reconstruction, posterior, 100, discriminator, last_layer)
    assert before["disc_factor"].item() == 0.0 and before["d_weight"].item() == 0.0
    assert after["disc_factor"].item() == pytest.approx(0.7) and after["d_weight"].item() > 0.0
    d_before, _ = loss_fn.discriminator_loss(gain_maps, reconstruction, 99, discriminator)
    d_after, _ = loss_fn.discriminator_loss(gain_maps, reconstruction, 100, discriminator)
    assert d_before.item() == 0.0 and d_after.item() > 0.0


def test_discriminator_is_never_called_before_disc_start(tiny_vae, gain_maps):
    def exploding_discriminator(_):
        raise AssertionError("the discriminator ran before disc_start")

    loss_fn = VAEGANLoss(disc_start=10)
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    loss_fn.generator_loss(gain_maps, reconstruction, posterior, 9, exploding_discriminator, tiny_vae.last_layer_weight)


def test_hinge_and_vanilla_values_on_known_logits():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # hinge: relu(1 - real) = [0, 0.5, 2] -> 5/6; relu(1 + fake) = [0, 1, 2] -> 1
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (5 / 6 + 1))
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected = 0.5 * (
        sum(softplus(-r) for r in real.tolist()) / 3 + sum(softplus(f) for f in fake.tolist()) / 3
    )
    assert vanilla_d_loss(real, fake).item() == pytest.approx(expected)


def test_discriminator_receives_no_gradient_from_the_generator_loss(tiny_vae, gain_maps, discriminator):
    loss_fn = VAEGANLoss(disc_start=0)
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    loss, _ = loss_fn.generator_loss(
        gain_maps, reconstruction, posterior, 1, discriminator, tiny_vae.last_layer_weight
    )
    loss.backward()
    assert all(p.grad is None for p in discriminator.parameters())
    assert all(p.requires_grad for p in discriminator.parameters())
    assert tiny_vae.decoder.conv_out.weight.grad is not None
    assert tiny_vae.encoder.conv_in.weight.grad.abs().sum() > 0


def test_vae_receives_no_gradient_from_the_discriminator_loss(tiny_vae, gain_maps, discriminator):
    loss_fn = VAEGANLoss(disc_start=0)
    reconstruction, _ = forward(tiny_vae, gain_maps)
    disc_loss, logs = loss_fn.discriminator_loss(gain_maps, reconstruction, 1, discriminator)
    disc_loss.backward()
    assert all(p.grad is None for p in tiny_vae.parameters())
    assert discriminator.main[0].weight.grad.abs().sum() > 0
    assert set(logs) == DISCRIMINATOR_KEYS


def test_logvar_is_frozen_by_default_and_learnable_on_request(tiny_vae, gain_maps):
    assert not VAEGANLoss().logvar.requires_grad
    loss_fn = VAEGANLoss(learn_logvar=True, disc_start=10**9)
    reconstruction, posterior = forward(tiny_vae, gain_maps)
    loss, _ = loss_fn.generator_loss(gain_maps, reconstruction, posterior, 0)
    loss.backward()
    assert loss_fn.logvar.grad is not None and loss_fn.logvar.grad.item() != 0.0


def test_perceptual_term_adds_lpips_distance_and_stays_frozen(tiny_vae, gain_maps):
    pytest.importorskip("lpips")
    torch.manual_seed(0)
    perceptual = build_perceptual_loss(pretrained=False)
    loss_fn = VAEGANLoss(perceptual_weight=1.0, perceptual_model=perceptual, disc_start=10**9)
    plain = VAEGANLoss(disc_start=10**9)
    reconstruction, _ = forward(tiny_vae, gain_maps)
    with_lpips = loss_fn.reconstruction_loss(gain_maps, reconstruction)
    without = plain.reconstruction_loss(gain_maps, reconstruction)
    distance = perceptual(gain_maps, reconstruction)
    assert distance.shape == (2, 1, 1, 1) and distance.min() > 0
    torch.testing.assert_close(with_lpips, without + distance)
    loss_fn.train()
    assert not perceptual.training
    assert not any(p.requires_grad for p in perceptual.parameters())


def test_unknown_disc_loss_is_refused():
    with pytest.raises(ValueError, match="disc_loss"):
        VAEGANLoss(disc_loss="wasserstein")


def test_kl_sums_in_fp32_also_from_a_bf16_posterior():
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    from radiodiff.losses import kl_to_standard_normal

    parameters = torch.randn(2, 6, 16, 16, generator=torch.Generator().manual_seed(0))
    fp32 = kl_to_standard_normal(DiagonalGaussianDistribution(parameters))
    torch.testing.assert_close(fp32, DiagonalGaussianDistribution(parameters.double()).kl().float())
    # from a bf16 posterior only the inputs' rounding is left: the sum itself is fp32 (diffusers' kl() is bf16)
    rounded = parameters.bfloat16()
    from_bf16 = kl_to_standard_normal(DiagonalGaussianDistribution(rounded))
    assert from_bf16.dtype == torch.float32 and DiagonalGaussianDistribution(rounded).kl().dtype == torch.bfloat16
    torch.testing.assert_close(from_bf16, kl_to_standard_normal(DiagonalGaussianDistribution(rounded.float())))
