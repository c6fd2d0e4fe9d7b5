"""RadioUNetModel: the original RadioWNet's layers at its widths, the cascade's wiring, the training phases, saving."""

import json

import pytest
import torch
from torch import nn

from radiodiff.models import RadioUNetModel, RadioUNetOutput

# Every convolution of the original RadioWNet(inputs=2) in RonLevie/RadioUNet lib/modules.py, in the order it
# registers them: (transposed?, in, out, kernel), the in-channels worked out from its concatenations.
ORIGINAL_FIRST_UNET = [
    (False, 2, 6, 3), (False, 6, 40, 5), (False, 40, 50, 5), (False, 50, 60, 5), (False, 60, 100, 5),  # layer00..2
    (False, 100, 100, 3), (False, 100, 150, 5), (False, 150, 300, 5), (False, 300, 500, 5),  # layer20..layer5
    (True, 500, 300, 4), (True, 300 + 300, 150, 4), (True, 150 + 150, 100, 4),  # conv_up5, conv_up4, conv_up3
    (False, 100 + 100, 100, 3), (True, 100 + 100, 60, 6), (False, 60 + 60, 50, 5),  # conv_up20, conv_up2, conv_up10
    (True, 50 + 50, 40, 6), (True, 40 + 40, 20, 6),  # conv_up1, conv_up0
    (False, 20 + 6 + 2, 20, 5), (False, 20 + 2, 1, 5),  # conv_up00, conv_up000
]
ORIGINAL_SECOND_UNET = [
    (False, 3, 20, 3), (False, 20, 30, 5), (False, 30, 40, 5), (False, 40, 50, 5), (False, 50, 60, 5),  # Wlayer00..2
    (False, 60, 70, 3), (False, 70, 90, 5), (False, 90, 110, 5), (False, 110, 150, 5),  # Wlayer20..Wlayer5
    (True, 150, 110, 4), (True, 110 + 110, 90, 4), (True, 90 + 90, 70, 4),  # Wconv_up5, Wconv_up4, Wconv_up3
    (False, 70 + 70, 60, 3), (True, 60 + 60, 50, 6), (False, 50 + 50, 40, 5),  # Wconv_up20, Wconv_up2, Wconv_up10
    (True, 40 + 40, 30, 6), (True, 30 + 30, 20, 6),  # Wconv_up1, Wconv_up0
    (False, 20 + 20 + 3, 20, 5), (False, 20 + 3, 1, 5),  # Wconv_up00, Wconv_up000
]
# what the original module counts (sum of p.numel() over RadioWNet(inputs=2).parameters()), for the record
ORIGINAL_PARAMETERS = {"first": 10_921_405, "second": 2_352_626, "total": 13_274_031}


def parameters_of(layers) -> int:
    return sum(c_in * c_out * k * k + c_out for _, c_in, c_out, k in layers)


def convolutions(module: nn.Module) -> list[tuple[bool, int, int, int]]:
    found = []
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            transposed = isinstance(layer, nn.ConvTranspose2d)
            found.append((transposed, layer.in_channels, layer.out_channels, layer.kernel_size[0]))
    return found


def maps(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(batch * size)
    buildings = (torch.rand(batch, 1, size, size, generator=generator) > 0.7).float()
    transmitter = torch.zeros(batch, 1, size, size)
    for index in range(batch):
        transmitter[index, 0, (7 * index + 3) % size, (11 * index + 5) % size] = 1.0
    return buildings, transmitter


@pytest.fixture
def cascade() -> RadioUNetModel:
    torch.manual_seed(0)
    return RadioUNetModel.from_preset("quickstart")


def test_the_paper_preset_has_the_original_s_convolutions_in_the_original_s_order():
    model = RadioUNetModel.from_preset("paper")
    assert convolutions(model.first_unet) == ORIGINAL_FIRST_UNET
    assert convolutions(model.second_unet) == ORIGINAL_SECOND_UNET
    weight_shapes = [tuple(p.shape) for name, p in model.named_parameters() if name.endswith("weight")]
    assert weight_shapes == [(c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
                             for transposed, c_in, c_out, k in ORIGINAL_FIRST_UNET + ORIGINAL_SECOND_UNET]


def test_the_paper_preset_counts_the_original_s_parameters():
    model = RadioUNetModel.from_preset("paper")
    assert parameters_of(ORIGINAL_FIRST_UNET) == ORIGINAL_PARAMETERS["first"]
    assert parameters_of(ORIGINAL_SECOND_UNET) == ORIGINAL_PARAMETERS["second"]
    assert sum(p.numel() for p in model.first_unet.parameters()) == ORIGINAL_PARAMETERS["first"]
    assert sum(p.numel() for p in model.second_unet.parameters()) == ORIGINAL_PARAMETERS["second"]
    assert model.num_parameters() == ORIGINAL_PARAMETERS["total"]
    # the defaults are the paper preset
    assert RadioUNetModel().num_parameters() == ORIGINAL_PARAMETERS["total"]


def test_the_paper_preset_pools_a_256x256_map_to_a_4x4_bottleneck_and_returns_256x256_maps():
    torch.manual_seed(0)
    model = RadioUNetModel.from_preset("paper").eval()
    bottleneck = []
    model.first_unet.down_blocks[-1].register_forward_hook(lambda module, args, output: bottleneck.append(output))
    with torch.no_grad():
        output = model(*maps(1, 256))
    assert bottleneck[0].shape == (1, 500, 4, 4)
    assert output.sample.shape == output.first_sample.shape == (1, 1, 256, 256)


@pytest.mark.parametrize("preset, parameters", [("quickstart", 1_085_255), ("unet", 986_371)])
def test_the_small_presets_map_64x64_inputs_to_64x64_gain_maps(preset, parameters):
    torch.manual_seed(0)
    model = RadioUNetModel.from_preset(preset)
    assert model.config.sample_size == 64
    assert model.num_parameters() == parameters
    output = model(*maps(3, 64))
    assert isinstance(output, RadioUNetOutput)
    assert output.sample.shape == output.first_sample.shape == (3, 1, 64, 64)
    # every block ends in a ReLU, the last too: gain is never negative
    assert output.sample.min() >= 0 and output.first_sample.min() >= 0


def test_the_unet_preset_is_one_u_net_whose_map_is_the_first():
    model = RadioUNetModel.from_preset("unet")
    assert not model.is_cascade and model.second_unet is None
    output = model(*maps(2, 64))
    assert output.sample is output.first_sample


def test_the_second_u_net_reads_the_first_s_map_beside_the_buildings_and_transmitter(cascade):
    buildings, transmitter = maps(2, 64)
    second_inputs = []
    cascade.second_unet.register_forward_hook(lambda module, args, output: second_inputs.append(args[0]))
    output = cascade(buildings, transmitter)
    assert torch.equal(second_inputs[0], torch.cat([output.first_sample, buildings, transmitter], dim=1))
    # and what it reads moves its map: the same buildings and transmitter, another first map, another final map
    with torch.no_grad():
        cascade.first_unet.head[1][0].bias += 0.5
    shifted = cascade(buildings, transmitter)
    assert not torch.equal(shifted.first_sample, output.first_sample)
    assert not torch.allclose(shifted.sample, output.sample)


def test_the_second_u_net_s_loss_never_reaches_the_first(cascade):
    cascade(*maps(2, 64)).sample.square().mean().backward()
    assert all(p.grad is None for p in cascade.first_unet.parameters())
    assert all(p.grad is not None for p in cascade.second_unet.parameters())


def test_phase_one_trains_the_first_u_net_alone_and_skips_the_second(cascade):
    trained = cascade.set_phase(1)
    assert {id(p) for p in trained} == {id(p) for p in cascade.first_unet.parameters()}
    assert not any(p.requires_grad for p in cascade.second_unet.parameters())
    calls = []
    cascade.second_unet.register_forward_hook(lambda *args: calls.append(1))
    output = cascade(*maps(2, 64), first_only=True)
    assert not calls and output.sample is output.first_sample


def test_phase_two_freezes_the_first_u_net_and_an_optimizer_step_moves_only_the_second(cascade):
    first_before = {k: v.clone() for k, v in cascade.first_unet.state_dict().items()}
    second_before = {k: v.clone() for k, v in cascade.second_unet.state_dict().items()}
    optimizer = torch.optim.Adam(cascade.set_phase(2), lr=1e-3)
    assert not any(p.requires_grad for p in cascade.first_unet.parameters())
    assert all(p.requires_grad for p in cascade.second_unet.parameters())
    buildings, transmitter = maps(2, 64)
    target = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(3))
    nn.functional.mse_loss(cascade(buildings, transmitter).sample, target).backward()
    optimizer.step()
    assert all(torch.equal(v, first_before[k]) for k, v in cascade.first_unet.state_dict().items())
    assert any(not torch.equal(v, second_before[k]) for k, v in cascade.second_unet.state_dict().items())


def test_a_single_u_net_has_no_second_phase():
    with pytest.raises(ValueError, match="phase: 2; this model is one U-Net"):
        RadioUNetModel.from_preset("unet").set_phase(2)
    with pytest.raises(ValueError, match="phase: 3; expected 1"):
        RadioUNetModel.from_preset("unet").set_phase(3)


@pytest.mark.parametrize("preset", ["quickstart", "unet"])
def test_save_pretrained_and_from_pretrained_round_trip_through_safetensors(preset, tmp_path):
    torch.manual_seed(0)
    model = RadioUNetModel.from_preset(preset).eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["first_down_channels"] == list(
        model.config.first_down_channels)
    loaded = RadioUNetModel.from_pretrained(tmp_path).eval()
    assert loaded.is_cascade == model.is_cascade
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys() and all(torch.equal(original[k], restored[k]) for k in original)
    inputs = maps(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*inputs).sample, model(*inputs).sample, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(up_kernel_sizes=(5, 3, 6, 5, 6, 6)), r"up_kernel_sizes\[0\]: 5; encoder level 6 pools, so expected an"),
        (dict(up_kernel_sizes=(4, 4, 6, 5, 6, 6)), r"up_kernel_sizes\[1\]: 4; encoder level 5 does not pool"),
        (dict(down_kernel_sizes=(3, 5, 4, 5, 5, 3, 5)), r"down_kernel_sizes\[2\]: 4; expected an odd size"),
        (dict(down_pooling=(True, True, True, False, True, False, True)), r"down_pooling\[0\]: True"),
        (dict(up_kernel_sizes=(4, 3, 6)), "expected L >= 2 encoder levels, L poolings and L - 1 decoder kernels"),
        (dict(first_up_channels=(64, 64)), r"first_up_channels \(2\): expected 7 and 6"),
        (dict(second_head_channels=None), "second_down_channels, second_up_channels, second_head_channels: expected"),
    ],
)
def test_a_layout_the_u_net_cannot_wire_is_refused_naming_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        RadioUNetModel.from_preset("quickstart", **overrides)


def test_an_unknown_preset_and_maps_the_poolings_cannot_halve_are_refused(cascade):
    with pytest.raises(ValueError, match=r"preset: 'huge'; expected one of \['paper', 'quickstart', 'unet'\]"):
        RadioUNetModel.from_preset("huge")
    with pytest.raises(ValueError, match="maps of 60x60: expected sides divisible by 16"):
        cascade(*maps(1, 60))
    buildings, transmitter = maps(1, 64)
    with pytest.raises(ValueError, match=r"expected both shaped \(B, 1, H, W\)"):
        cascade(buildings, transmitter[:, :, :32])
