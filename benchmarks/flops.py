"""Model FLOPs, counted with ``torch.utils.flop_counter.FlopCounterMode``, attention included on every device.

torch's counter has formulas for the CUDA attention kernels (flash, memory-efficient, cuDNN) but none for the one
``scaled_dot_product_attention`` dispatches to on CPU, ``aten._scaled_dot_product_flash_attention_for_cpu``: CPU
attention counted zero FLOPs, which left out ~7 % of the paper VAE's step. The mapping below gives the CPU kernel
and its backward torch's own SDPA formulas: ``4 B H L S D`` forward (Q K^T and P V, two FLOPs per multiply-add),
``10 B H L S D`` backward (the scores recomputed, then the gradients of P, V, Q and K); the softmax is not
counted, as in torch's formulas for the CUDA kernels.
"""

from __future__ import annotations

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _cpu_attention_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


CPU_ATTENTION_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_forward,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def flop_counter_mode() -> FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts CPU attention; read ``get_total_flops()`` after the block."""
    return FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FORMULAS)
