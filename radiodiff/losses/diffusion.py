"""The second stage's training objectives: RadioDiff's decoupled (C, eps) loss, flow matching's velocity MSE and
direct regression's clean-latent MSE.

Each takes the denoiser's prediction and its targets as tensors and returns the batch loss and a dict of
detached scalars to log; neither knows the model or the optimizer.
"""

from __future__ import annotations

import torch


def _per_sample_mean(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).mean(dim=1)


def radiodiff_loss(
    pred_c: torch.Tensor,
    pred_eps: torch.Tensor,
    target_c: torch.Tensor,
    target_eps: torch.Tensor,
    weights: tuple[torch.Tensor, torch.Tensor] | None,
    use_l1: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """RadioDiff's loss: per sample ``w1 (MSE + L1)(C) + w2 (MSE + L1)(eps)``, halved, averaged over the batch.

    Args:
        pred_c, pred_eps: the denoiser's two predictions, (B, C, H, W) each.
        target_c, target_eps: ``-x0`` and the noise (``RadioDiffScheduler.training_targets``).
        weights: ``(w1, w2)``, one per sample (``RadioDiffScheduler.loss_weights(t)``), or ``None`` for the
            unweighted loss (the original's ``weighting_loss: False``).
        use_l1: add the L1 terms and halve the sum, as the original's ``use_l1`` (its default) does.
    """
    mse_c = _per_sample_mean((pred_c - target_c) ** 2)
    mse_eps = _per_sample_mean((pred_eps - target_eps) ** 2)
    loss_c, loss_eps = mse_c, mse_eps
    if use_l1:
        loss_c = (mse_c + _per_sample_mean((pred_c - target_c).abs())) / 2
        loss_eps = (mse_eps + _per_sample_mean((pred_eps - target_eps).abs())) / 2
    if weights is None:
        per_sample = loss_c + loss_eps
    else:
        w1, w2 = weights
        per_sample = w1 * loss_c + w2 * loss_eps
    loss = per_sample.mean()
    logs = {"loss": loss.detach(), "loss_c": loss_c.mean().detach(), "loss_eps": loss_eps.mean().detach()}
    return loss, logs


def flow_matching_loss(
    pred_velocity: torch.Tensor, target_velocity: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Flow matching's loss: the MSE between the predicted and the true velocity ``noise - x0``."""
    loss = ((pred_velocity - target_velocity) ** 2).mean()
    return loss, {"loss": loss.detach()}


def latent_regression_loss(
    pred_original: torch.Tensor, original: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Direct regression's loss: the MSE between the predicted and the true clean (normalised) latent."""
    loss = ((pred_original - original) ** 2).mean()
    return loss, {"loss": loss.detach()}
