"""Converting checkpoints of the original RadioDiff trainer (``model-N.pt``) into diffusers folders.

The test checkpoints are built from tiny models in the original layout: the VAE under latent-diffusion's
key names (the inverse of diffusers' conversion, written out below), the discriminator under
``loss.discriminator.``, and an ``ema_pytorch.EMA`` state with ``online_model.*`` and ``ema_model.*``.
"""

import re

import pytest
import torch
import yaml
from diffusers import AutoencoderKL

from tests.helpers.tiny_runs import REPO
from radiodiff import PatchGANDiscriminator, RadioDiffVAE
from radiodiff.cli import main
from radiodiff.convert import ConversionError, convert_checkpoint

# latent-diffusion normalises with 32 groups everywhere, so the tiny model needs 32-channel blocks
TINY_COMPVIS_VAE = dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32, sample_size=32)
TINY_DISCRIMINATOR = dict(in_channels=1, ndf=8, n_layers=2)
FIRST_RADIO_DDCONFIG = dict(
    double_z=True,
    z_channels=3,
    resolution=[32, 32],
    in_channels=1,
    out_ch=1,
    ch=32,
    ch_mult=[1, 2],
    num_res_blocks=1,
    attn_resolutions=[],
    dropout=0.0,
)

DIFFUSERS_TO_COMPVIS_RENAMES = [
    ("conv_norm_out", "norm_out"),
    ("mid_block.resnets.0", "mid.block_1"),
    ("mid_block.resnets.1", "mid.block_2"),
    ("mid_block.attentions.0", "mid.attn_1"),
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
    ("conv_shortcut", "nin_shortcut"),
]


def compvis_vae_state(vae: RadioDiffVAE) -> dict[str, torch.Tensor]:
    """The state dict of ``vae`` as latent-diffusion's ``AutoencoderKL`` names and shapes it."""
    levels = len(vae.config.block_out_channels)
    state = {}
    for key, value in vae.state_dict().items():
        for new, old in DIFFUSERS_TO_COMPVIS_RENAMES:
            key = key.replace(new, old)
        key = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", key)
        key = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", key)
        # the original decoder numbers its levels from the lowest resolution up
        key = re.sub(
            r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.",
            lambda m: f"decoder.up.{levels - 1 - int(m[1])}.{'block' if m[2] == 'resnets' else 'upsample'}.",
            key,
        )
        # the original attention projections are 1x1 convolutions
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", key):
            value = value[:, :, None, None]
        state[key] = value.clone()
    return state


def perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with different weights, standing in for an EMA average."""
    generator = torch.Generator().manual_seed(seed)
    copy = type(model).from_config(model.config)
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    return copy


def original_checkpoint(vae, discriminator, ema_vae=None, drop=()) -> dict:
    model_state = compvis_vae_state(vae)
    model_state |= {f"loss.discriminator.{k}": v for k, v in discriminator.state_dict().items()}
    model_state["loss.logvar"] = torch.tensor(0.25)
    model_state["loss.perceptual_loss.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
    model_state["loss.perceptual_loss.net.slice1.0.weight"] = torch.zeros(64, 3, 3, 3)
    for key in drop:
        del model_state[key]
    optimizer = torch.optim.AdamW(vae.parameters(), lr=5e-6)
    payload = {
        "step": 5000,
        "model": model_state,
        "opt_ae": optimizer.state_dict(),
        "lr_scheduler_ae": {"base_lrs": [5e-6], "last_epoch": 5000, "lr_lambdas": [None]},
        "scaler": None,
    }
    if ema_vae is not None:
        ema_state = {"initted": torch.tensor(True), "step": torch.tensor(5000)}
        ema_state |= {f"online_model.{k}": v for k, v in model_state.items()}
        ema_state |= {f"ema_model.{k}": v for k, v in compvis_vae_state(ema_vae).items()}
        payload["ema"] = ema_state
    return payload


@pytest.fixture
def tiny_compvis_models():
    torch.manual_seed(0)
    vae = RadioDiffVAE.from_block_channels(**TINY_COMPVIS_VAE).eval()
    discriminator = PatchGANDiscriminator(**TINY_DISCRIMINATOR).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that a lost buffer would show
        for module in discriminator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return vae, discriminator, perturbed(vae, seed=1).eval()


@pytest.fixture
def checkpoint_file(tmp_path, tiny_compvis_models):
    vae, discriminator, ema_vae = tiny_compvis_models
    path = tmp_path / "model-1.pt"
    torch.save(original_checkpoint(vae, discriminator, ema_vae), path)
    return path


def assert_same_outputs(expected, actual, inputs: torch.Tensor) -> None:
    with torch.no_grad():
        torch.testing.assert_close(actual(inputs), expected(inputs), rtol=0, atol=1e-6)


def vae_outputs(model):
    return lambda maps: model.eval()(maps).sample


def test_converted_vae_and_discriminator_give_the_original_outputs(
    tmp_path, checkpoint_file, tiny_compvis_models, gain_maps
):
    vae, discriminator, _ = tiny_compvis_models

    report = convert_checkpoint(checkpoint_file, tmp_path / "converted")

    converted_vae = AutoencoderKL.from_pretrained(report.vae_dir)
    assert_same_outputs(vae_outputs(vae), vae_outputs(converted_vae), gain_maps)
    assert converted_vae.config.block_out_channels == [32, 64]
    assert converted_vae.config.layers_per_block == 1
    converted_discriminator = PatchGANDiscriminator.from_pretrained(report.discriminator_dir)
    assert converted_discriminator.config.ndf == 8 and converted_discriminator.config.n_layers == 2
    assert_same_outputs(discriminator, converted_discriminator, gain_maps)


@pytest.mark.parametrize("layout", ["first_radio", "latent_diffusion"])
def test_conversion_builds_the_vae_from_the_original_yaml(
    tmp_path, checkpoint_file, tiny_compvis_models, gain_maps, layout
):
    vae, _, _ = tiny_compvis_models
    lossconfig = dict(disc_start=50001, kl_weight=1e-6, disc_weight=0.5, disc_in_channels=1)
    if layout == "first_radio":
        model = dict(embed_dim=3, lossconfig=lossconfig, ddconfig=FIRST_RADIO_DDCONFIG, ckpt_path=None)
    else:
        model = dict(params=dict(embed_dim=3, ddconfig=FIRST_RADIO_DDCONFIG, lossconfig=dict(params=lossconfig)))
    config = tmp_path / "first_radio.yaml"
    config.write_text(yaml.safe_dump({"model": model, "trainer": {"lr": 5e-6}}))

    report = convert_checkpoint(checkpoint_file, tmp_path / "converted", config=config)

    converted = AutoencoderKL.from_pretrained(report.vae_dir)
    assert converted.config.sample_size == 32
    assert_same_outputs(vae_outputs(vae), vae_outputs(converted), gain_maps)


def test_a_config_that_does_not_fit_the_weights_is_refused(tmp_path, checkpoint_file):
    config = tmp_path / "first_radio.yaml"
    ddconfig = FIRST_RADIO_DDCONFIG | dict(ch=64)
    config.write_text(yaml.safe_dump({"model": dict(embed_dim=3, ddconfig=ddconfig)}))

    with pytest.raises(ConversionError, match="do not fit the model built from the config"):
        convert_checkpoint(checkpoint_file, tmp_path / "converted", config=config)


def test_ema_weights_are_written_as_the_ema_variant_and_chosen_by_use_ema(
    tmp_path, checkpoint_file, tiny_compvis_models, gain_maps
):
    vae, _, ema_vae = tiny_compvis_models

    online = convert_checkpoint(checkpoint_file, tmp_path / "online")
    averaged = convert_checkpoint(checkpoint_file, tmp_path / "ema", use_ema=True)

    assert online.ema_variant_written and online.weights == "online"
    assert_same_outputs(vae_outputs(vae), vae_outputs(AutoencoderKL.from_pretrained(online.vae_dir)), gain_maps)
    ema_variant = AutoencoderKL.from_pretrained(online.vae_dir, variant="ema")
    assert_same_outputs(vae_outputs(ema_vae), vae_outputs(ema_variant), gain_maps)
    assert averaged.weights == "ema"
    assert_same_outputs(vae_outputs(ema_vae), vae_outputs(AutoencoderKL.from_pretrained(averaged.vae_dir)), gain_maps)


def test_use_ema_without_an_ema_in_the_checkpoint_is_refused(tmp_path, tiny_compvis_models):
    vae, discriminator, _ = tiny_compvis_models
    path = tmp_path / "model-1.pt"
    torch.save(original_checkpoint(vae, discriminator), path)

    with pytest.raises(ConversionError, match="no 'ema' entry"):
        convert_checkpoint(path, tmp_path / "converted", use_ema=True)
    assert not convert_checkpoint(path, tmp_path / "converted").ema_variant_written


def test_conversion_refuses_to_write_over_an_earlier_one(tmp_path, checkpoint_file):
    convert_checkpoint(checkpoint_file, tmp_path / "converted")

    with pytest.raises(ConversionError, match=r"converted/vae: already exists and is not empty"):
        convert_checkpoint(checkpoint_file, tmp_path / "converted", use_ema=True)


def test_the_report_names_unused_keys_and_the_loss_logvar(tmp_path, checkpoint_file):
    report = convert_checkpoint(checkpoint_file, tmp_path / "converted")

    assert report.unused_keys == [
        "loss.perceptual_loss.lin0.model.1.weight",
        "loss.perceptual_loss.net.slice1.0.weight",
    ]
    assert report.logvar == pytest.approx(0.25)
    assert report.step == 5000
    summary = report.summary()
    assert "loss.perceptual_loss.* (2)" in summary
    assert "loss.logvar = 0.25" in summary


def test_a_checkpoint_missing_vae_weights_is_refused_with_the_keys_named(tmp_path, tiny_compvis_models):
    vae, discriminator, _ = tiny_compvis_models
    path = tmp_path / "model-1.pt"
    torch.save(original_checkpoint(vae, discriminator, drop=["decoder.mid.attn_1.q.weight"]), path)

    with pytest.raises(ConversionError, match=r"lacks 1 weights.*decoder\.mid_block"):
        convert_checkpoint(path, tmp_path / "converted")


def test_missing_discriminator_weights_are_reported(tmp_path, tiny_compvis_models):
    vae, discriminator, _ = tiny_compvis_models
    path = tmp_path / "model-1.pt"
    torch.save(original_checkpoint(vae, discriminator, drop=["loss.discriminator.main.3.running_var"]), path)

    report = convert_checkpoint(path, tmp_path / "converted")

    assert report.discriminator_missing_keys == ["main.3.running_var"]
    assert "discriminator keys missing" in report.summary()


class NotAWeight:
    """A class only ``weights_only=False`` could rebuild."""


@pytest.mark.parametrize(
    "payload, message",
    [
        ([torch.zeros(1)], "expected a dict with 'model'.*got list"),
        ({"state_dict": {}}, r"found keys \['state_dict'\]"),
        ({"model": {"encoder.conv_in.weight": NotAWeight()}}, "needs arbitrary code to unpickle"),
    ],
    ids=["not-a-dict", "no-model", "needs-code"],
)
def test_files_that_are_not_original_checkpoints_are_refused(tmp_path, payload, message):
    path = tmp_path / "model-1.pt"
    torch.save(payload, path)

    with pytest.raises(ConversionError, match=message):
        convert_checkpoint(path, tmp_path / "converted")
    assert not (tmp_path / "converted").exists()


def test_a_file_that_is_not_a_torch_checkpoint_is_refused_by_name(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("model-5.pt was trained on DPM maps\n")

    with pytest.raises(ConversionError, match=r"notes\.txt: not a PyTorch checkpoint"):
        convert_checkpoint(path, tmp_path / "converted")


def test_convert_command_writes_the_folders_and_prints_the_summary(tmp_path, checkpoint_file, capsys):
    code = main(["convert", str(checkpoint_file), "--out", str(tmp_path / "converted"), "--use-ema"])

    assert code == 0
    assert (tmp_path / "converted" / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "converted" / "vae" / "diffusion_pytorch_model.ema.safetensors").is_file()
    assert (tmp_path / "converted" / "discriminator" / "config.json").is_file()
    assert "vae (ema weights)" in capsys.readouterr().out


def test_convert_command_reports_a_bad_file_as_an_error(tmp_path, capsys):
    path = tmp_path / "model-1.pt"
    torch.save([1, 2, 3], path)

    assert main(["convert", str(path), "--out", str(tmp_path / "converted")]) == 2
    assert "radiodiff convert: error:" in capsys.readouterr().err


def test_the_docs_say_which_weights_reproduce_the_original_second_stage():
    """The original train_cond_ldm.py reloads a first-stage checkpoint with init_from_ckpt(use_ema=True)."""
    conversion = (REPO / "docs" / "publishing.md").read_text().split("## Converting an original RadioDiff checkpoint")[1]
    assert "use_ema=True" in conversion and "`radiodiff convert --use-ema` gives the VAE" in conversion
