"""The condition encoder keeps the one-pixel transmitter through its 4x downsampling."""

import itertools
import math

import pytest
import torch

from radiodiff.models import RadioMapConditionEncoder, build_condition_encoder, transmitter_log_distance


def one_pixel(row: int, col: int, size: int = 32, batch: int = 1) -> torch.Tensor:
    transmitter = torch.zeros(batch, 1, size, size)
    transmitter[:, 0, row, col] = 1.0
    return transmitter


@pytest.fixture
def encoder() -> RadioMapConditionEncoder:
    torch.manual_seed(0)
    return build_condition_encoder("tiny", downsampling_factor=4).eval()


def test_features_are_at_the_latent_resolution(encoder):
    buildings = (torch.rand(2, 1, 32, 48) > 0.7).float()
    transmitter = torch.zeros(2, 1, 32, 48)
    transmitter[0, 0, 3, 5] = transmitter[1, 0, 9, 40] = 1.0
    features = encoder(buildings, transmitter)
    assert features.shape == (2, encoder.config.out_channels, 8, 12)


@pytest.mark.parametrize("distance_channel", [True, False])
def test_moving_the_transmitter_by_one_pixel_changes_the_features_at_every_offset_in_a_cell(distance_channel):
    torch.manual_seed(0)
    encoder = RadioMapConditionEncoder(
        downsampling_factor=4, hidden_channels=16, num_res_blocks=1, out_channels=4, distance_channel=distance_channel
    ).eval()
    buildings = (torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    # the 16 positions of one 4x4 cell: everything a strided downsampling would merge into one latent pixel
    positions = list(itertools.product(range(8, 12), range(12, 16)))
    with torch.no_grad():
        features = torch.cat([encoder(buildings, one_pixel(row, col)) for row, col in positions])
    for (i, a), (j, b) in itertools.combinations(enumerate(positions), 2):
        difference = (features[i] - features[j]).abs().max().item()
        assert difference > 1e-4, f"transmitter at {a} and {b} give the same features"


def test_the_distance_channel_is_the_normalised_log_distance_from_the_transmitter():
    distance = transmitter_log_distance(one_pixel(2, 5, size=16))
    assert distance.shape == (1, 1, 16, 16)
    assert distance[0, 0, 2, 5] == 0
    assert distance[0, 0, 2, 9].item() == pytest.approx(math.log1p(4) / math.log1p(math.hypot(16, 16)))
    assert distance[0, 0, 5, 9].item() == pytest.approx(math.log1p(5) / math.log1p(math.hypot(16, 16)))
    assert distance.max() <= 1


def test_maps_not_divisible_by_the_factor_or_not_one_channel_are_refused(encoder):
    with pytest.raises(ValueError, match="30x32: expected sides divisible by the downsampling factor 4"):
        encoder(torch.zeros(1, 1, 30, 32), torch.zeros(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"expected both shaped \(B, 1, H, W\)"):
        encoder(torch.zeros(1, 2, 32, 32), torch.zeros(1, 2, 32, 32))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="hidden_channels \\(30\\) is not divisible by norm_num_groups \\(8\\)"):
        RadioMapConditionEncoder(hidden_channels=30)
    with pytest.raises(ValueError, match="preset: 'huge'"):
        build_condition_encoder("huge", 4)


def test_save_pretrained_round_trips_the_encoder(encoder, tmp_path):
    encoder.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = RadioMapConditionEncoder.from_pretrained(tmp_path)
    settings = {key: value for key, value in encoder.config.items() if not key.startswith("_")}
    assert {key: loaded.config[key] for key in settings} == settings
    restored = loaded.state_dict()
    assert all(torch.equal(value, restored[key]) for key, value in encoder.state_dict().items())
