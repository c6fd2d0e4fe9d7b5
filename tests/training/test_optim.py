"""train.optimizer: AdamW, or Muon for the hidden weights beside AdamW (radiodiff.training.optim)."""

import pytest
import torch

from radiodiff.config import ConfigError, load_vae_config
from radiodiff.models import ConditionedDenoiser, RadioDiffVAE
from radiodiff.training.optim import Muon, build_optimizers, orthogonalize


def test_orthogonalize_gives_singular_values_near_one_with_the_input_s_singular_vectors():
    matrix = torch.randn(16, 144, generator=torch.Generator().manual_seed(0))
    result = orthogonalize(matrix)
    singular_values = torch.linalg.svdvals(result)
    # the quintic iteration trades exactness for speed: Muon's authors report values in about [0.7, 1.2]
    assert singular_values.min() > 0.6 and singular_values.max() < 1.25
    u, _, vh = torch.linalg.svd(matrix, full_matrices=False)
    # its singular vectors: result ≈ U diag(s') V^T, so U^T result V is diagonal
    rotated = u.T @ result @ vh.T
    assert (rotated - torch.diag(torch.diagonal(rotated))).abs().max() < 0.05
    # tall matrices are orthogonalised through their transpose; stacks matrix by matrix
    assert torch.allclose(orthogonalize(matrix.T), result.T, atol=1e-6)
    stack = torch.stack([matrix, 2 * matrix.flip(0)])
    assert torch.allclose(orthogonalize(stack)[1], orthogonalize(2 * matrix.flip(0)), atol=1e-6)


def linear_and_conv_pair():
    """A convolution and a linear layer holding the same matrix (out, in * kh * kw), with the same gradient."""
    generator = torch.Generator().manual_seed(1)
    kernel = torch.randn(8, 4, 3, 3, generator=generator)
    gradient = torch.randn(8, 4, 3, 3, generator=generator)
    conv = torch.nn.Parameter(kernel.clone())
    conv.grad = gradient.clone()
    linear = torch.nn.Parameter(kernel.reshape(8, -1).clone())
    linear.grad = gradient.reshape(8, -1).clone()
    return conv, linear


def test_muon_updates_a_convolution_kernel_as_the_matrix_of_its_fan_out_by_fan_in():
    conv, linear = linear_and_conv_pair()
    conv_optimizer, linear_optimizer = Muon([conv], lr=0.01, weight_decay=0.1), Muon([linear], lr=0.01, weight_decay=0.1)
    before = linear.detach().clone()
    for _ in range(3):  # momentum builds up across steps
        conv_optimizer.step()
        linear_optimizer.step()
    assert not torch.equal(linear.detach(), before)
    assert torch.allclose(conv.detach().reshape(8, -1), linear.detach(), atol=1e-6)

    # a channels-last kernel gets the same update, written into its own storage
    channels_last, _ = linear_and_conv_pair()
    channels_last.data = channels_last.data.contiguous(memory_format=torch.channels_last)
    storage = channels_last.data_ptr()
    optimizer = Muon([channels_last], lr=0.01, weight_decay=0.1)
    for _ in range(3):
        optimizer.step()
    assert channels_last.data_ptr() == storage and channels_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(channels_last.detach(), conv.detach(), atol=1e-6)


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon arrived in torch 2.9")
def test_muon_matches_torch_s_muon_on_a_matrix():
    _, ours = linear_and_conv_pair()
    _, reference = linear_and_conv_pair()
    start = ours.detach().clone()
    our_optimizer = Muon([ours], lr=0.02, weight_decay=0.1)
    torch_optimizer = torch.optim.Muon([reference], lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    for _ in range(3):
        our_optimizer.step()
        torch_optimizer.step()
    # torch runs its Newton–Schulz iteration in bfloat16, this one in float32
    ours_moved, reference_moved = ours.detach() - start, reference.detach() - start
    assert torch.allclose(ours_moved, reference_moved, rtol=0, atol=0.02 * reference_moved.abs().max())


def test_muon_refuses_vectors_and_bad_settings():
    with pytest.raises(ValueError, match="2 or more dimensions"):
        Muon([torch.nn.Parameter(torch.zeros(4))], lr=0.01)
    with pytest.raises(ValueError, match="learning rate"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        Muon([torch.nn.Parameter(torch.zeros(4, 4))], lr=0.01, momentum=1.0)


@pytest.mark.parametrize("model_class", ["RadioDiffVAE", "ConditionedDenoiser", "pixel-space ConditionedDenoiser"])
def test_build_optimizers_splits_hidden_weights_from_the_rest_and_covers_every_parameter_once(model_class):
    if model_class == "RadioDiffVAE":
        model = RadioDiffVAE.from_block_channels((8, 16), layers_per_block=1, norm_num_groups=4, sample_size=32)
    elif model_class == "ConditionedDenoiser":
        model = ConditionedDenoiser.from_preset("tiny", 3, 2, sample_size=8, downsampling_factor=4)
    else:
        model = ConditionedDenoiser.from_preset("radiounet", 1, 2, sample_size=32, downsampling_factor=1)
    named = list(model.named_parameters())
    train = load_vae_config(None, ["train.optimizer=muon", "train.muon_ns_steps=3", "train.muon_momentum=0.9"]).train

    muon, adamw = build_optimizers(named, train, 1e-3, model.edge_layers)
    assert isinstance(muon, Muon) and isinstance(adamw, torch.optim.AdamW)
    assert muon.param_groups[0]["ns_steps"] == 3 and muon.param_groups[0]["momentum"] == 0.9
    assert muon.param_groups[0]["lr"] == adamw.param_groups[0]["lr"] == 1e-3
    in_muon = {id(p) for p in muon.param_groups[0]["params"]}
    in_adamw = {id(p) for p in adamw.param_groups[0]["params"]}
    assert not in_muon & in_adamw and in_muon | in_adamw == {id(p) for _, p in named}
    names = {id(p): name for name, p in named}
    assert all(p.ndim >= 2 and not names[id(p)].startswith(model.edge_layers) for p in muon.param_groups[0]["params"])
    # every edge layer's weight (the map or latent in, the output out) is left to AdamW
    for edge in model.edge_layers:
        weights = [p for name, p in named if name == f"{edge}.weight"]
        assert weights and id(weights[0]) in in_adamw
    assert any(p.ndim == 4 for p in muon.param_groups[0]["params"])

    (only,) = build_optimizers(named, load_vae_config(None, []).train, 1e-3, model.edge_layers)
    assert isinstance(only, torch.optim.AdamW) and len(only.param_groups[0]["params"]) == len(named)


def test_an_unknown_optimizer_no_newton_schulz_step_or_a_momentum_of_1_is_one_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"train\.optimizer.*(adamw|muon)"):
        load_vae_config(None, ["train.optimizer=sgd"])
    with pytest.raises(ConfigError, match=r"train\.muon_ns_steps: expected a positive integer, got 0"):
        load_vae_config(None, ["train.muon_ns_steps=0"])
    with pytest.raises(ConfigError, match=r"train\.muon_momentum: expected a value in \[0, 1\), got 1\.0"):
        load_vae_config(None, ["train.muon_momentum=1.0"])
