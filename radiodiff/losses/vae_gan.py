"""The VAE-GAN objective of RadioDiff's first stage (latent-diffusion's ``LPIPSWithDiscriminator``).

The loss takes tensors and a step and returns a loss and a dict of detached scalars named as the original
logs them. It knows nothing of optimizers: the caller runs the generator update with
:meth:`VAEGANLoss.generator_loss`, then the discriminator update with :meth:`VAEGANLoss.discriminator_loss`.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn

DISC_LOSSES = ("hinge", "vanilla")

# latent-diffusion clamps the gradient-norm ratio to this before multiplying by ``disc_weight``
ADAPTIVE_WEIGHT_MAX = 1e4


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Stop ``module``'s parameters from receiving gradients inside the block (inputs still do)."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


def build_perceptual_loss(pretrained: bool = True) -> nn.Module:
    """LPIPS(VGG) for 1-channel maps in [-1, 1], frozen.

    ``pretrained=False`` gives a random VGG trunk (for tests and offline smoke runs); the default needs
    torchvision's ImageNet VGG16 weights, which are downloaded once into the torch hub cache.
    """
    try:
        import lpips
    except ImportError as error:
        raise ImportError(
            "loss.perceptual_weight > 0 needs the `lpips` package: pip install 'radiodiff[perceptual]'"
        ) from error
    try:
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=not pretrained, verbose=False)
    except (OSError, RuntimeError) as error:
        raise RuntimeError(
            "could not load the VGG16 weights for the perceptual loss (LPIPS). Fetch them once while online "
            "with `python -c \"import lpips; lpips.LPIPS(net='vgg')\"` (they land in the torch hub cache), "
            f"or set loss.perceptual_weight=0. Cause: {error}"
        ) from error
    return _GrayscaleLPIPS(model)


class _GrayscaleLPIPS(nn.Module):
    def __init__(self, lpips_model: nn.Module):
        super().__init__()
        self.lpips = lpips_model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "_GrayscaleLPIPS":
        # LPIPS stays in eval mode: it is a fixed metric, not a trained part
        return super().train(False)

    def forward(self, gain_map: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        to_rgb = (lambda t: t.expand(-1, 3, -1, -1)) if gain_map.shape[1] == 1 else (lambda t: t)
        return self.lpips(to_rgb(gain_map), to_rgb(reconstruction))


def kl_to_standard_normal(posterior: DiagonalGaussianDistribution) -> torch.Tensor:
    """``KL(q(z|x) || N(0, I))`` of each map, summed over its latent in fp32 also when the encoder ran under bf16
    autocast: diffusers' ``posterior.kl()`` on the posterior's moments in fp32 (it sums in their own dtype)."""
    return DiagonalGaussianDistribution(posterior.parameters.float(), deterministic=posterior.deterministic).kl()


class VAEGANLoss(nn.Module):
    r"""KL-regularised reconstruction loss with an adaptively weighted PatchGAN term.

    Generator objective, as latent-diffusion computes it:
    ``nll + kl_weight * kl + adaptive_weight * disc_weight * disc_factor * g_loss`` with
    ``rec = l1_weight * |x - x̂| + (x - x̂)^2 (+ perceptual_weight * LPIPS)``, ``nll = sum(rec / exp(logvar) + logvar) / B``,
    ``kl = sum(KL(q(z|x) || N(0, I))) / B``, ``g_loss = -mean(D(x̂))`` and
    ``adaptive_weight = clamp(|grad nll| / (|grad g_loss| + 1e-4), 0, 1e4)`` at the decoder's last layer.

    Unlike the original, no discriminator work happens before ``disc_start``: there ``g_loss`` and
    ``d_weight`` are logged as 0 and the discriminator is never called.

    Args:
        kl_weight (`float`): weight of the KL term.
        disc_weight (`float`): multiplies the adaptive weight (logged ``d_weight`` includes it).
        disc_start (`int`): first step at which the adversarial terms are on.
        disc_factor (`float`): adversarial factor from ``disc_start`` on (0 before).
        disc_loss (`str`): ``"hinge"`` or ``"vanilla"`` (softplus) for the discriminator.
        perceptual_weight (`float`): weight of LPIPS in the reconstruction term; 0 disables it.
        l1_weight (`float`): weight of the absolute error beside the squared one; 1 is latent-diffusion's sum, 0 a
            plain squared error (the mean, not the median, of what the decoder cannot tell apart: better PSNR).
        clamp_reconstruction (`bool`): score the reconstruction as it is read, clamped to the maps' range [-1, 1]
            (as evaluation and RadioDiff read it): going past a target that sits at the range's end (a building's
            -1) costs nothing, every other error counts as before.
        logvar_init (`float`): initial value of the scalar log-variance.
        learn_logvar (`bool`): train the log-variance (the original's optimizer effectively never did).
        perceptual_model (`nn.Module`, *optional*): a ready LPIPS-like module ``(x, x̂) -> (B,1,1,1)``;
            built with pretrained VGG weights when omitted and ``perceptual_weight > 0``.
    """

    def __init__(
        self,
        kl_weight: float = 1e-6,
        disc_weight: float = 0.5,
        disc_start: int = 50001,
        disc_factor: float = 1.0,
        disc_loss: str = "hinge",
        perceptual_weight: float = 0.0,
        l1_weight: float = 1.0,
        clamp_reconstruction: bool = False,
        logvar_init: float = 0.0,
        learn_logvar: bool = False,
        perceptual_model: nn.Module | None = None,
    ):
        super().__init__()
        if disc_loss not in DISC_LOSSES:
            raise ValueError(f"disc_loss: {disc_loss!r} is not one of {list(DISC_LOSSES)}")
        self.kl_weight = kl_weight
        self.disc_weight = disc_weight
        self.disc_start = disc_start
        self.disc_factor = disc_factor
        self.disc_loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
            hinge_d_loss if disc_loss == "hinge" else vanilla_d_loss
        )
        self.perceptual_weight = perceptual_weight
        self.l1_weight = l1_weight
        self.clamp_reconstruction = clamp_reconstruction
        if perceptual_weight > 0 and perceptual_model is None:
            perceptual_model = build_perceptual_loss(pretrained=True)
        self.perceptual = perceptual_model if perceptual_weight > 0 else None
        self.logvar = nn.Parameter(torch.tensor(float(logvar_init)), requires_grad=learn_logvar)

    def disc_factor_at(self, step: int) -> float:
        """The adversarial factor at ``step``: 0 before ``disc_start``, ``disc_factor`` from it on."""
        return self.disc_factor if step >= self.disc_start else 0.0

    def discriminator_active(self, step: int) -> bool:
        return self.disc_factor_at(step) > 0.0

    def reconstruction_loss(self, gain_map: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
        """Per-pixel ``l1_weight * |x - x̂| + (x - x̂)^2``, plus the weighted perceptual distance when enabled."""
        error = gain_map - reconstruction
        if self.clamp_reconstruction:
            # zero exactly where clamping the reconstruction to [-1, 1] zeroes the error; elsewhere the plain error,
            # whose gradient still pulls an out-of-range value back where the target is inside the range
            past_the_end = ((gain_map <= -1.0) & (reconstruction < -1.0)) | ((gain_map >= 1.0) & (reconstruction > 1.0))
            error = error.masked_fill(past_the_end, 0.0)
        rec_loss = error.square() if self.l1_weight == 0 else self.l1_weight * error.abs() + error.square()
        if self.perceptual is not None:
            rec_loss = rec_loss + self.perceptual_weight * self.perceptual(gain_map, reconstruction)
        return rec_loss

    @staticmethod
    def adaptive_weight(nll_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
        """``clamp(|d nll / dW| / (|d g_loss / dW| + 1e-4), 0, 1e4)`` at ``last_layer``, detached."""
        nll_grads = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
        g_grads = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        ratio = torch.linalg.vector_norm(nll_grads) / (torch.linalg.vector_norm(g_grads) + 1e-4)
        return ratio.clamp(0.0, ADAPTIVE_WEIGHT_MAX).detach()

    def generator_loss(
        self,
        gain_map: torch.Tensor,
        reconstruction: torch.Tensor,
        posterior,
        step: int,
        discriminator: nn.Module | None = None,
        last_layer: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The VAE's loss at ``step`` and the logged scalars (``train/`` names without the prefix).

        ``discriminator`` and ``last_layer`` are needed from ``disc_start`` on; the discriminator's
        parameters get no gradient from this loss.
        """
        batch_size = gain_map.shape[0]
        rec_loss = self.reconstruction_loss(gain_map.contiguous(), reconstruction.contiguous())
        nll_loss = (rec_loss / torch.exp(self.logvar) + self.logvar).sum() / batch_size
        kl_loss = kl_to_standard_normal(posterior).sum() / batch_size
        loss = nll_loss + self.kl_weight * kl_loss

        disc_factor = self.disc_factor_at(step)
        zero = nll_loss.new_zeros(())
        g_loss, d_weight = zero, zero
        if disc_factor > 0.0:
            if discriminator is None or last_layer is None:
                raise ValueError(f"step {step} >= disc_start {self.disc_start}: discriminator and last_layer needed")
            with frozen(discriminator):
                g_loss = -discriminator(reconstruction.contiguous()).mean()
            d_weight = self.adaptive_weight(nll_loss, g_loss, last_layer) * self.disc_weight
            loss = loss + d_weight * disc_factor * g_loss

        logs = {
            "total_loss": loss.detach(),
            "logvar": self.logvar.detach(),
            "kl_loss": kl_loss.detach(),
            "nll_loss": nll_loss.detach(),
            "rec_loss": rec_loss.detach().mean(),
            "d_weight": d_weight.detach(),
            "disc_factor": zero.new_full((), disc_factor),  # on the loss's device, like every logged value
            "g_loss": g_loss.detach(),
        }
        return loss, logs

    def discriminator_loss(
        self, gain_map: torch.Tensor, reconstruction: torch.Tensor, step: int, discriminator: nn.Module
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The discriminator's loss on real maps and detached reconstructions, and its logged scalars."""
        # the D step sees a detached reconstruction: the VAE must not get D's gradient
        logits_real = discriminator(gain_map.contiguous().detach())
        logits_fake = discriminator(reconstruction.contiguous().detach())
        disc_loss = self.disc_factor_at(step) * self.disc_loss_fn(logits_real, logits_fake)
        logs = {
            "disc_loss": disc_loss.detach(),
            "logits_real": logits_real.detach().mean(),
            "logits_fake": logits_fake.detach().mean(),
        }
        return disc_loss, logs
