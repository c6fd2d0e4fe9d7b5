import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from radiodiff import RadioDiffVAE
from radiodiff.models.vae import RadioDiffVAEOutput

ORIGINAL_DDCONFIG = dict(
    double_z=True,
    z_channels=3,
    resolution=320,
    in_channels=1,
    out_ch=1,
    ch=128,
    ch_mult=[1, 2, 4],
    num_res_blocks=2,
    attn_resolutions=[],
    dropout=0.0,
)


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_defaults_are_the_paper_model_with_55_3m_parameters():
    vae = RadioDiffVAE()
    assert parameter_count(vae) == 55_307_453
    assert vae.config.in_channels == vae.config.out_channels == 1
    assert vae.config.latent_channels == 3
    assert vae.downsampling_factor == 4


def test_original_ddconfig_gives_the_same_model_and_latent_shapes():
    vae = RadioDiffVAE.from_compvis_config(ORIGINAL_DDCONFIG, embed_dim=3)
    assert parameter_count(vae) == 55_307_453
    assert vae.latent_shape(256, 256) == (3, 64, 64)
    assert vae.latent_shape(320, 320) == (3, 80, 80)
    assert vae.config.sample_size == 320


def test_paper_model_encodes_a_256_map_to_a_3x64x64_latent():
    vae = RadioDiffVAE()
    with torch.no_grad():
        latent = vae.encode(torch.zeros(1, 1, 256, 256)).latent_dist.mode()
    assert latent.shape == (1, 3, 64, 64)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"attn_resolutions": [16]}, "attn_resolutions"),
        ({"dropout": 0.1}, "dropout"),
        ({"double_z": False}, "double_z"),
        ({"z_channels": 4}, "embed_dim"),
        ({"resamp_with_conv": True}, "unknown keys"),
    ],
)
def test_original_ddconfig_that_diffusers_cannot_express_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        RadioDiffVAE.from_compvis_config({**ORIGINAL_DDCONFIG, **change}, embed_dim=3)


def test_training_forward_returns_reconstruction_posterior_and_latent(tiny_vae, gain_maps):
    output = tiny_vae(gain_maps, sample_posterior=True, return_posterior=True)
    assert isinstance(output, RadioDiffVAEOutput)
    assert output.sample.shape == gain_maps.shape
    assert output.latent.shape == (2, 3, 16, 16)
    assert output.posterior.mean.shape == output.latent.shape
    # a sampled latent differs from the posterior mode
    assert not torch.allclose(output.latent, output.posterior.mode())


def test_evaluation_forward_is_deterministic(tiny_vae, gain_maps):
    tiny_vae.eval()
    with torch.no_grad():
        first = tiny_vae(gain_maps).sample
        second = tiny_vae(gain_maps).sample
        with_posterior = tiny_vae(gain_maps, return_posterior=True)
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(with_posterior.latent, with_posterior.posterior.mode())


def test_posterior_sampling_is_reproducible_with_a_generator(tiny_vae, gain_maps):
    with torch.no_grad():
        a = tiny_vae(gain_maps, sample_posterior=True, generator=torch.Generator().manual_seed(3)).sample
        b = tiny_vae(gain_maps, sample_posterior=True, generator=torch.Generator().manual_seed(3)).sample
    torch.testing.assert_close(a, b)


def test_saved_vae_loads_with_plain_autoencoderkl_and_gives_equal_outputs(tiny_vae, gain_maps, tmp_path):
    tiny_vae.eval()
    tiny_vae.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))

    plain = AutoencoderKL.from_pretrained(tmp_path).eval()
    ours = RadioDiffVAE.from_pretrained(tmp_path).eval()
    assert type(plain) is AutoencoderKL
    with torch.no_grad():
        expected = tiny_vae(gain_maps).sample
        torch.testing.assert_close(plain(gain_maps).sample, expected)
        torch.testing.assert_close(ours(gain_maps).sample, expected)
    assert plain.config.scaling_factor == tiny_vae.config.scaling_factor


def test_safetensors_file_holds_every_weight(tiny_vae, tmp_path):
    tiny_vae.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert set(stored) == set(tiny_vae.state_dict())


def test_last_layer_weight_is_the_decoder_output_convolution(tiny_vae):
    assert tiny_vae.last_layer_weight is tiny_vae.decoder.conv_out.weight


def test_the_config_s_model_defaults_are_the_model_s_defaults():
    from radiodiff.config import VAEModelConfig

    from_config = RadioDiffVAE.from_block_channels(**VAEModelConfig().architecture(), sample_size=256)
    defaults = RadioDiffVAE().config
    assert {key: value for key, value in from_config.config.items() if key != "_use_default_values"} == {
        key: value for key, value in defaults.items() if key != "_use_default_values"
    }
    assert from_config.downsampling_factor == 4


def test_attention_levels_add_self_attention_at_those_levels_of_encoder_and_decoder(gain_maps, tmp_path):
    from radiodiff.config import ConfigError, load_vae_config

    config = load_vae_config(None, ["model.block_out_channels=[8,16,16]", "model.norm_num_groups=4", "model.attention_levels=[2]"])
    vae = RadioDiffVAE.from_block_channels(**config.model.architecture(), sample_size=gain_maps.shape[-1])
    assert vae.config.down_block_types == ("DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D")
    # the decoder runs its levels from the lowest resolution up
    assert vae.config.up_block_types == ("AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D")
    plain_config = load_vae_config(None, ["model.block_out_channels=[8,16,16]", "model.norm_num_groups=4"])
    plain = RadioDiffVAE.from_block_channels(**plain_config.model.architecture(), sample_size=64)
    assert parameter_count(vae) > parameter_count(plain)
    vae.eval().save_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(AutoencoderKL.from_pretrained(tmp_path).eval()(gain_maps).sample, vae(gain_maps).sample)
    for levels in ("[3]", "[1,1]", "[-1]"):
        with pytest.raises(ConfigError, match=r"model\.attention_levels: .*expected distinct levels from 0 to 2"):
            load_vae_config(None, ["model.block_out_channels=[8,16,16]", "model.norm_num_groups=4", f"model.attention_levels={levels}"])
