"""The benchmarks' FLOP counter counts attention on CPU as torch's formulas do on CUDA."""

import importlib.util

import pytest
import torch
from tests.helpers.tiny_runs import REPO


def load_flops():
    spec = importlib.util.spec_from_file_location("benchmark_flops", REPO / "benchmarks" / "flops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_attention_forward_and_backward_are_counted_as_4_and_10_bhlsd():
    flops = load_flops()
    batch, heads, queries, keys, dim = 2, 3, 64, 48, 16
    query = torch.randn(batch, heads, queries, dim, requires_grad=True)
    key = torch.randn(batch, heads, keys, dim, requires_grad=True)
    value = torch.randn(batch, heads, keys, dim, requires_grad=True)
    with torch.utils.flop_counter.FlopCounterMode(display=False) as plain:
        torch.nn.functional.scaled_dot_product_attention(query, key, value)
    assert plain.get_total_flops() == 0  # torch's own counter: why benchmarks/flops.py exists

    with flops.flop_counter_mode() as forward:
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value)
    assert forward.get_total_flops() == 4 * batch * heads * queries * keys * dim
    with flops.flop_counter_mode() as backward:
        out.sum().backward()
    # five products: the scores recomputed, then the gradients of P, V, Q and K
    assert backward.get_total_flops() == 10 * batch * heads * queries * keys * dim


def test_the_vae_mid_block_attention_is_in_the_count():
    from radiodiff import RadioDiffVAE

    flops = load_flops()
    torch.manual_seed(0)
    vae = RadioDiffVAE.from_block_channels((8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32)
    gain_map = torch.randn(1, 1, 32, 32)
    with torch.no_grad(), torch.utils.flop_counter.FlopCounterMode(display=False) as plain:
        vae(gain_map)
    with torch.no_grad(), flops.flop_counter_mode() as counted:
        vae(gain_map)
    # two mid-block attentions (encoder, decoder) over the 16x16 latent grid, 16 channels, one head
    tokens, channels = 16 * 16, 16
    assert counted.get_total_flops() - plain.get_total_flops() == pytest.approx(2 * 4 * tokens * tokens * channels)
