"""The optimizers both stages build from ``train:``: AdamW, or Muon for the hidden weight matrices beside AdamW.

Muon (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/) replaces each hidden layer's momentum update
by its nearest semi-orthogonal matrix (a few Newton–Schulz iterations), which trains convolutional and
transformer layers in fewer steps than Adam. ``torch.optim.Muon`` (torch >= 2.9) takes 2-D parameters only; a
convolution kernel is the matrix ``(out, in * kh * kw)`` of its fan-out by its fan-in, so :class:`Muon` here
orthogonalises that matrix, in the same update torch's does (Nesterov momentum, decoupled weight decay and
Moonshot's ``0.2 * sqrt(max(A, B))`` scale, with which Muon takes AdamW's learning rate and weight decay).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

# the quintic Newton–Schulz coefficients of Muon's reference implementation (and of torch.optim.Muon)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(matrix: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """An approximately semi-orthogonal matrix with ``matrix``'s singular vectors (singular values near 1);
    a stack of matrices ``(..., A, B)`` is orthogonalised matrix by matrix, in one batched iteration."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.float()
    transposed = x.shape[-2] > x.shape[-1]
    if transposed:
        x = x.mT
    x = x / torch.linalg.matrix_norm(x, keepdim=True).clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if transposed else x


def as_matrix(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` (a weight's shape) as the matrix (fan-out, fan-in), its columns ordered as ``like`` stores them:
    a view for ``like`` itself, channels-last kernels included, so that in-place updates land in the weight."""
    if tensor.ndim == 4 and like.is_contiguous(memory_format=torch.channels_last) and not like.is_contiguous():
        return tensor.permute(0, 2, 3, 1).reshape(tensor.shape[0], -1)
    return tensor.reshape(tensor.shape[0], -1)


class Muon(torch.optim.Optimizer):
    """Muon for weights of two or more dimensions (linear layers and convolution kernels).

    Args:
        params: the hidden layers' weights; biases, norms and the layers that read or write the data belong to
            an AdamW beside it (:func:`build_optimizers`).
        lr (`float`): learning rate, on AdamW's scale (the update's RMS is matched to AdamW's, 0.2).
        weight_decay (`float`): decoupled weight decay, as AdamW's.
        momentum (`float`): Nesterov momentum.
        ns_steps (`int`): Newton–Schulz iterations.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.0, momentum: float = 0.95,
                 ns_steps: int = 5):
        if not lr > 0.0:
            raise ValueError(f"Muon: expected a positive learning rate, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon: expected a momentum in [0, 1), got {momentum}")
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, ns_steps=ns_steps))
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.ndim < 2:
                    raise ValueError(
                        f"Muon: takes weights of 2 or more dimensions, got one of shape {tuple(parameter.shape)}"
                    )

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            parameters = [p for p in group["params"] if p.grad is not None]
            if not parameters:
                continue
            for parameter in parameters:
                if "momentum_buffer" not in self.state[parameter]:
                    self.state[parameter]["momentum_buffer"] = torch.zeros_like(parameter)
            # every tensor op over the whole group at once (torch's foreach kernels), then one batched
            # orthogonalisation per matrix shape instead of a loop of small ones
            grads = [p.grad for p in parameters]
            buffers = [self.state[p]["momentum_buffer"] for p in parameters]
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads)
            nesterov = torch._foreach_add(grads, buffers, alpha=momentum)
            if weight_decay:
                torch._foreach_mul_(parameters, 1.0 - lr * weight_decay)
            by_shape: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}
            for parameter, update in zip(parameters, nesterov):
                matrix = as_matrix(update, parameter)
                by_shape.setdefault(tuple(matrix.shape), []).append((as_matrix(parameter, parameter), matrix))
            for (fan_out, fan_in), items in by_shape.items():
                updates = orthogonalize(torch.stack([update for _, update in items]), group["ns_steps"])
                weights = [weight for weight, _ in items]
                scale = 0.2 * math.sqrt(max(fan_out, fan_in))  # Moonshot's: the update's RMS of AdamW's
                torch._foreach_add_(weights, list(updates.to(weights[0].dtype).unbind()), alpha=-lr * scale)
        return loss


def build_optimizers(
    parameters: list[tuple[str, torch.Tensor]], train, lr: float, edge_layers: tuple[str, ...] = ()
) -> list[torch.optim.Optimizer]:
    """``train.optimizer``'s optimizers over the named ``parameters``, each at ``lr``: one AdamW for ``adamw``;
    for ``muon``, Muon over the weights of two or more dimensions outside ``edge_layers`` (the name prefixes of
    the layers that read the input or write the output, which Muon's authors leave to AdamW), then AdamW over
    the rest."""
    adamw = dict(
        betas=(train.adam_beta1, train.adam_beta2),
        weight_decay=train.weight_decay,
        # None leaves torch's choice: a loop over the tensors on CPU, foreach on CUDA
        fused=train.fused_optimizer or None,
    )
    if train.optimizer == "adamw":
        return [torch.optim.AdamW([p for _, p in parameters], lr=lr, **adamw)]
    hidden = [p for name, p in parameters if p.ndim >= 2 and not name.startswith(edge_layers)]
    hidden_ids = {id(p) for p in hidden}
    rest = [p for _, p in parameters if id(p) not in hidden_ids]
    muon = Muon(
        hidden, lr=lr, weight_decay=train.weight_decay, momentum=train.muon_momentum, ns_steps=train.muon_ns_steps
    )
    return [muon, torch.optim.AdamW(rest, lr=lr, **adamw)]
