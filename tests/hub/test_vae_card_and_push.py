"""The model card of a training run and its push to the Hub. No test reaches the network: the two
``HfApi`` calls a push makes are replaced by recorders (or by a connection that fails)."""

import importlib
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants
from PIL import Image

from radiodiff import PatchGANDiscriminator, RadioDiffVAE
from radiodiff.cli import main
from radiodiff.config import load_vae_config, save_config
from radiodiff.hub import HubError, push_to_hub, render_vae_model_card, write_vae_model_card

from tests.helpers.hub_mock import folder_state
from tests.helpers.tiny_runs import TINY_VAE

METRICS = {
    "split": "val",
    "variant": "ema",
    "num_maps": 96,
    "metrics": {
        "nmse": {"mean": 0.0123, "std": 0.004, "ci95": [0.0115, 0.0131]},
        "rmse": {"mean": 0.0456, "std": 0.01, "ci95": [0.044, 0.047]},
        "ssim": {"mean": 0.912, "std": 0.03, "ci95": [0.906, 0.918]},
        "psnr": {"mean": 27.3, "std": 1.9, "ci95": [26.9, 27.7]},
    },
    "latent": {"shape": [3, 32, 32], "compression_factor": 1.33, "kl_per_element": 1.2},
}
SUMMARY = {
    "steps": 1200,
    "max_steps": 1200,
    "wall_time_s": 250.3,
    "hardware": "CPU (2 cores)",
    "num_processes": 1,
    "mixed_precision": "no",
    "data_source": "synthetic",
    "images_per_sec": 30.1,
}


def make_training_run(output_dir: Path, evaluated: bool = True, ema: bool = True) -> Path:
    """An output folder as the trainer leaves it, with tiny models and small files."""
    torch.manual_seed(0)
    vae = RadioDiffVAE.from_block_channels(**TINY_VAE)
    vae.save_pretrained(output_dir / "vae")
    if ema:
        vae.save_pretrained(output_dir / "vae", variant="ema")
    discriminator = PatchGANDiscriminator(ndf=8, n_layers=2)
    discriminator.save_pretrained(output_dir / "discriminator")
    config = load_vae_config(
        overrides=[
            f"output_dir={output_dir}",
            "model.block_out_channels=[8, 16]",
            "model.norm_num_groups=4",
            "data.synthetic.size=64",
            "train.max_steps=1200",
            f"train.use_ema={str(ema).lower()}",
        ]
    )
    save_config(config, output_dir / "config.yaml")
    (output_dir / "samples").mkdir()
    for milestone in (2, 10):
        Image.new("L", (64, 32), color=milestone * 10).save(output_dir / "samples" / f"sample-{milestone}.png")
    (output_dir / "logs").mkdir()
    (output_dir / "logs" / "2026-11-24-06-00_.log").write_text(f"saving to {output_dir}/checkpoints\n")
    checkpoint = output_dir / "checkpoints" / "checkpoint-1200"
    checkpoint.mkdir(parents=True)
    (checkpoint / "optimizer.bin").write_bytes(b"adam state")
    (checkpoint / "model.safetensors").write_bytes(b"weights")
    parameters = {"vae": vae.num_parameters(), "discriminator": discriminator.num_parameters()}
    (output_dir / "training_summary.json").write_text(json.dumps(SUMMARY | {"parameters": parameters}))
    if evaluated:
        (output_dir / "metrics.json").write_text(json.dumps(METRICS))
    return output_dir


@pytest.fixture
def training_run(tmp_path) -> Path:
    return make_training_run(tmp_path / "radiodiff-vae")


def test_the_card_metadata_names_the_library_tags_license_and_metrics(training_run):
    card = ModelCard.load(write_vae_model_card(training_run, repo_id="someone/radio-vae"))

    metadata = card.data.to_dict()
    assert metadata["library_name"] == "diffusers"
    assert {"radio-map", "vae", "radiodiff", "autoencoderkl", "synthetic"} <= set(metadata["tags"])
    assert metadata["license"] == "mit"
    (model_index,) = metadata["model-index"]
    assert model_index["name"] == "radio-vae"
    (result,) = model_index["results"]
    assert result["dataset"] == {"name": "synthetic radio maps", "type": "synthetic-radio-maps", "split": "val"}
    assert {metric["type"]: metric["value"] for metric in result["metrics"]} == {
        "nmse": 0.0123,
        "rmse": 0.0456,
        "ssim": 0.912,
        "psnr": 27.3,
    }


def test_the_card_describes_architecture_training_evaluation_and_sample(training_run):
    text = render_vae_model_card(training_run).text

    vae_parameters = sum(p.numel() for p in RadioDiffVAE.from_pretrained(training_run / "vae").parameters())
    discriminator = PatchGANDiscriminator.from_pretrained(training_run / "discriminator")
    assert f"| parameters | {vae_parameters:,} |" in text
    assert f"| discriminator parameters (training only) | {discriminator.num_parameters():,} |" in text
    assert "| block channels | 8, 16 (1 residual block per level, self-attention in the mid blocks) |" in text
    assert "| latent | 3 channels, 3x32x32 for a 64x64 map (1.33x fewer values) |" in text
    assert "| downsampling factor | 2 |" in text
    assert "| steps | 1,200 of 1,200 |" in text
    assert "| training time | 4 min 10 s |" in text
    assert "| hardware | CPU (2 cores) |" in text
    assert "| SSIM | 0.912 ± 0.03 | [0.906, 0.918] | higher |" in text
    assert "96 maps of the `val` split with the `ema` weights." in text
    assert "![The trainer's sample at its last milestone](samples/sample-10.png)" in text
    assert "| reconstruction loss | 1 x L1 + L2 |" in text and "| gradient clipping | off |" in text


def test_the_card_names_a_squared_error_loss_and_the_clipping_norm(training_run):
    config = load_vae_config(training_run / "config.yaml", ["loss.l1_weight=0", "train.max_grad_norm=0.5"])
    save_config(config, training_run / "config.yaml")
    text = render_vae_model_card(training_run).text
    assert "| reconstruction loss | L2 |" in text and "| gradient clipping | norm 0.5 |" in text
    assert "AdamW betas (0.9, 0.999)" in text and "Muon" not in text


def test_the_card_names_muon_and_a_clamped_reconstruction_loss(training_run):
    config = load_vae_config(training_run / "config.yaml", ["loss.l1_weight=0", "loss.clamp_reconstruction=true",
                                                        "train.optimizer=muon"])
    save_config(config, training_run / "config.yaml")
    text = render_vae_model_card(training_run).text
    assert "| reconstruction loss | L2 of the map clamped to [-1, 1] |" in text
    assert "Muon (hidden weights) + AdamW betas" in text


def test_the_card_shows_how_to_load_the_vae_and_its_ema_variant(training_run):
    text = render_vae_model_card(training_run, repo_id="someone/radio-vae").text

    assert 'AutoencoderKL.from_pretrained("someone/radio-vae", subfolder="vae")' in text
    assert '# vae = AutoencoderKL.from_pretrained("someone/radio-vae", subfolder="vae", variant="ema")' in text
    assert "scaling_factor = vae.config.scaling_factor                    # 0.3" in text
    assert "Trained on **synthetic** maps only" in text
    assert "RadioDiff: An Effective Generative Diffusion Model" in text
    assert "RadioUNet: Fast Radio Map Estimation" in text


def test_metrics_that_the_maps_cannot_define_are_shown_as_undefined(training_run):
    # one perfectly reconstructed map: no interval anywhere, and an infinite PSNR written as null
    single = {"mean": 0.0, "std": 0.0, "ci95": None}
    evaluation = METRICS | {
        "num_maps": 1,
        "metrics": {"nmse": single, "rmse": single, "ssim": {**single, "mean": 1.0},
                    "psnr": {"mean": None, "std": None, "ci95": None}},
    }
    (training_run / "metrics.json").write_text(json.dumps(evaluation))
    card = render_vae_model_card(training_run)
    assert "| PSNR (dB) | undefined |" in card.text
    assert [r.metric_type for r in card.data.eval_results] == ["nmse", "rmse", "ssim"]


def test_the_card_shows_the_training_subset_beside_validation(training_run):
    train_psnr = {"mean": 31.8, "std": 1.0, "ci95": [31.0, 32.6]}
    block = {"split": "train", "num_maps": 96,
             "metrics": {**METRICS["metrics"], "nmse": {"mean": 0.008, "std": 0.001, "ci95": None}, "psnr": train_psnr},
             "gap": {"nmse": -0.0043, "rmse": 0.0, "ssim": 0.0, "psnr": 4.5}}
    (training_run / "metrics.json").write_text(json.dumps(METRICS | {"train_subset": block}))
    card = render_vae_model_card(training_run)
    assert ("On 96 maps of the training split (spread over it, not augmented) the same weights reach "
            "PSNR 31.80 dB, NMSE 0.008 and SSIM 0.912: +4.50 dB of PSNR against `val`.") in card.text
    assert "+4.50 dB" not in render_vae_model_card(make_training_run(training_run.parent / "plain")).text


def test_the_card_says_when_the_training_maps_were_augmented(training_run):
    assert "quarter turns" not in render_vae_model_card(training_run).text
    config = load_vae_config(training_run / "config.yaml", ["data.augment=dihedral"])
    save_config(config, training_run / "config.yaml")
    assert ("(64 city layouts x 8 transmitters, 64x64, seed 0), each training map also under the 7 other flips and "
            "quarter turns of the square.") in render_vae_model_card(training_run).text


def test_an_unevaluated_run_without_ema_gets_a_card_without_model_index(tmp_path):
    run = make_training_run(tmp_path / "run", evaluated=False, ema=False)

    card = render_vae_model_card(run)

    assert "model-index" not in card.data.to_dict()
    assert "This run has not been evaluated (no `metrics.json`)." in card.text
    assert 'variant="ema"' not in card.text
    assert "| EMA | off |" in card.text
    assert 'from_pretrained("USER/NAME", subfolder="vae")' in card.text


def test_the_config_hub_repo_id_names_the_repository_in_the_card(training_run):
    config = load_vae_config(training_run / "config.yaml", overrides=["train.hub_repo_id=lab/radiodiff-vae"])
    save_config(config, training_run / "config.yaml")

    assert 'from_pretrained("lab/radiodiff-vae", subfolder="vae")' in render_vae_model_card(training_run).text


def test_a_folder_without_a_saved_vae_gets_no_card(tmp_path):
    with pytest.raises(HubError, match="expected a training run with vae/config.json"):
        write_vae_model_card(tmp_path)
    assert not (tmp_path / "README.md").exists()


def test_card_command_writes_the_readme(training_run, capsys):
    assert main(["card", str(training_run)]) == 0

    assert (training_run / "README.md").read_text().startswith("---\n")
    assert f"wrote {training_run / 'README.md'}" in capsys.readouterr().out


def test_push_uploads_the_vae_card_samples_and_metrics_but_never_checkpoints_logs_or_config(training_run, hub):
    url = push_to_hub(training_run, "someone/radio-vae", token="hf_test_token")

    assert url == "https://huggingface.co/someone/radio-vae"
    assert hub.created == [
        {
            "repo_id": "someone/radio-vae",
            "token": "hf_test_token",
            "private": False,
            "exist_ok": True,
            "repo_type": "model",
        }
    ]
    assert hub.uploaded_files() == {
        "README.md",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.ema.safetensors",
        "samples/sample-2.png",
        "samples/sample-10.png",
        "metrics.json",
        "training_summary.json",
    }
    assert 'from_pretrained("someone/radio-vae", subfolder="vae")' in (training_run / "README.md").read_text()


def test_push_includes_the_discriminator_and_creates_a_private_repo_on_request(training_run, hub):
    push_to_hub(training_run, "someone/radio-vae", private=True, include_discriminator=True, token="hf_test_token")

    assert hub.created[0]["private"] is True
    assert {"discriminator/config.json", "discriminator/diffusion_pytorch_model.safetensors"} <= hub.uploaded_files()
    assert not any(name.startswith(("checkpoints/", "logs/")) for name in hub.uploaded_files())


def test_push_without_a_token_fails_clearly_and_touches_nothing(training_run, hub, no_token):
    before = folder_state(training_run)

    with pytest.raises(HubError, match="no Hugging Face token: log in with `hf auth login` or set HF_TOKEN"):
        push_to_hub(training_run, "someone/radio-vae")

    assert folder_state(training_run) == before
    assert hub.created == [] and hub.commits == []


def test_push_in_offline_mode_fails_clearly_and_touches_nothing(training_run, hub, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = folder_state(training_run)

    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        push_to_hub(training_run, "someone/radio-vae", token="hf_test_token")

    assert folder_state(training_run) == before
    assert hub.created == []


@pytest.mark.parametrize("repo_id", ["radio-vae", "some one/radio vae"])
def test_push_refuses_a_malformed_repo_id(training_run, hub, repo_id):
    with pytest.raises(HubError, match=f"repo id '{repo_id}'"):
        push_to_hub(training_run, repo_id, token="hf_test_token")
    assert hub.created == []


def test_push_with_include_discriminator_needs_a_saved_discriminator(training_run, hub):
    for path in (training_run / "discriminator").iterdir():
        path.unlink()

    with pytest.raises(HubError, match="no discriminator/config.json"):
        push_to_hub(training_run, "someone/radio-vae", include_discriminator=True, token="hf_test_token")


def test_push_command_uses_the_environment_token_and_never_prints_it(training_run, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")

    code = main(["push", str(training_run), "--repo-id", "someone/radio-vae", "--private", "--include-discriminator"])

    output = capsys.readouterr()
    assert code == 0
    assert hub.created[0]["token"] == "hf_secret_value_123"
    assert "pushed" in output.out and "https://huggingface.co/someone/radio-vae" in output.out
    assert "hf_secret_value_123" not in output.out + output.err


def test_push_command_without_a_token_exits_with_an_error(training_run, hub, no_token, capsys):
    assert main(["push", str(training_run), "--repo-id", "someone/radio-vae"]) == 2
    assert "radiodiff push: error: no Hugging Face token" in capsys.readouterr().err


def test_push_without_network_fails_with_one_error_and_leaves_the_local_card_as_it_was(
    training_run, monkeypatch, capsys
):
    write_vae_model_card(training_run)
    before = folder_state(training_run), (training_run / "README.md").read_text()

    def unreachable(api, *args, **kwargs):
        # the transport error of the HTTP library this huggingface_hub uses
        library = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
        raise library.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")

    assert main(["push", str(training_run), "--repo-id", "someone/radio-vae"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("radiodiff push: error: pushing") and "the Hub cannot be reached" in error
    assert error.count("\n") == 1 and "Traceback" not in error
    assert (folder_state(training_run), (training_run / "README.md").read_text()) == before


def test_nothing_machine_local_is_uploaded(training_run, hub):
    """config.yaml stays home because it holds local paths; no uploaded file may repeat them."""
    secret_folder = "/home/alice-workstation/private-radio-data"
    config = load_vae_config(training_run / "config.yaml", ["data.source=datasets", f"data.root={secret_folder}"])
    save_config(config, training_run / "config.yaml")

    push_to_hub(training_run, "someone/radio-vae", token="hf_test_token")

    uploaded = hub.uploaded()
    assert "config.yaml" not in uploaded
    for name, content in uploaded.items():
        for local in (secret_folder, "alice-workstation", str(training_run), str(training_run.resolve())):
            assert local.encode() not in content, f"{name} holds {local}"
    assert "a local dataset" in uploaded["README.md"].decode()


def test_the_card_claims_unit_latents_only_for_a_measured_shift_and_scale(training_run):
    from radiodiff.evaluation import write_latent_scale

    unmeasured = str(render_vae_model_card(training_run))
    assert "keeps a fixed `scaling_factor` and no shift" in unmeasured and "mean 0" not in unmeasured

    write_latent_scale(training_run / "vae", 0.25, -1.5)
    measured = str(render_vae_model_card(training_run))
    assert "shift factor -1.5, scaling factor 0.25" in measured and "normalised latents have mean 0" in measured
    assert "(vae.encode(gain_map).latent_dist.sample() - shift_factor) * scaling_factor" in measured
