"""The second stage's model card and push. The Hub is mocked as in test_vae_card_and_push.py: nothing reaches the network."""

import json

import pytest
import yaml
from huggingface_hub import ModelCard
from tests.helpers.hub_mock import folder_state
from tests.helpers.map_fixtures import tiny_pipeline

from radiodiff.cli import main
from radiodiff.hub import HubError, push_to_hub, render_pipeline_model_card, write_pipeline_model_card

METRICS = {
    "split": "val", "num_maps": 40, "formulation": "radiodiff", "num_inference_steps": 5, "seed": 0,
    "rows": {
        "model": {"metrics": {"nmse": {"mean": 0.0212, "std": 0.01, "ci95": [0.018, 0.024]},
                              "rmse": {"mean": 0.051, "std": 0.01, "ci95": [0.048, 0.054]},
                              "ssim": {"mean": 0.81, "std": 0.05, "ci95": [0.79, 0.83]},
                              "psnr": {"mean": 26.1, "std": 1.5, "ci95": [25.6, 26.6]}},
                  "non_finite": {}, "seconds_per_map": 0.042, "nfe": 6},
        "vae_ceiling": {"metrics": {"nmse": {"mean": 0.0101, "std": 0.004, "ci95": [0.009, 0.011]},
                                    "rmse": {"mean": 0.033, "std": 0.01, "ci95": None},
                                    "ssim": {"mean": 0.9, "std": 0.02, "ci95": None},
                                    "psnr": {"mean": None, "std": None, "ci95": None}}, "non_finite": {}},
        "physics_baseline": {"metrics": {"nmse": {"mean": 0.31, "std": 0.1, "ci95": [0.28, 0.34]},
                                         "rmse": {"mean": 0.2, "std": 0.05, "ci95": None},
                                         "ssim": {"mean": 0.4, "std": 0.1, "ci95": None},
                                         "psnr": {"mean": 14.0, "std": 2.0, "ci95": None}}, "non_finite": {}},
    },
}
SECRET = "/home/alice-workstation/private-radio-data"


@pytest.fixture
def pipeline_run(tmp_path):
    """A second-stage output folder: pipeline/ (its VAE loaded from a local folder, as the trainer's is),
    config.yaml, metrics.json, a sample, and what must never be uploaded (checkpoints, logs)."""
    first_stage = tmp_path / "alice-workstation-vae"
    tiny_pipeline().vae.save_pretrained(first_stage)
    from diffusers import AutoencoderKL

    pipe = tiny_pipeline("flow_matching", vae=AutoencoderKL.from_pretrained(first_stage))
    pipe.register_to_config(default_num_inference_steps=2)  # the run's diffusion.sampling_steps
    run = tmp_path / "run"
    pipe.save_pretrained(run / "pipeline")
    (run / "config.yaml").write_text(yaml.safe_dump({
        "output_dir": str(run), "vae": {"path": str(first_stage)}, "denoiser": {"preset": "tiny"},
        "data": {"source": "synthetic", "synthetic": {"maps": 48, "tx_per_map": 8, "size": 32, "cache_dir": SECRET}},
        "train": {"max_steps": 1500, "batch_size": 16, "lr": 1e-3},
    }))
    (run / "metrics.json").write_text(json.dumps(METRICS))
    (run / "samples").mkdir()
    (run / "samples" / "sample-250.png").write_bytes(b"\x89PNG sample")
    (run / "checkpoints" / "checkpoint-250").mkdir(parents=True)
    (run / "checkpoints" / "checkpoint-250" / "optimizer.bin").write_bytes(b"state")
    (run / "logs").mkdir()
    (run / "logs" / "train.log").write_text(f"data from {SECRET}\n")
    return run


def test_the_card_is_a_diffusers_image_to_image_card_with_the_models_metrics_as_model_index(pipeline_run):
    card = render_pipeline_model_card(pipeline_run, "someone/radio-ldm")
    data = card.data.to_dict()
    assert (data["library_name"], data["pipeline_tag"], data["license"]) == ("diffusers", "image-to-image", "mit")
    assert "flow-matching" in data["tags"] and "synthetic" in data["tags"]
    assert "with the **flow matching** formulation (`FlowMatchEulerDiscreteScheduler`)" in card.text
    results = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert results == {"nmse": 0.0212, "rmse": 0.051, "ssim": 0.81, "psnr": 26.1}
    assert data["model-index"][0]["results"][0]["task"]["type"] == "image-to-image"


def test_the_card_tables_the_model_beside_the_vae_ceiling_and_the_physics_baseline(pipeline_run):
    text = str(render_pipeline_model_card(pipeline_run, "someone/radio-ldm"))
    assert "| model | 0.0212 [0.018, 0.024] | 0.051 [0.048, 0.054] | 0.81 [0.79, 0.83] | 26.1 [25.6, 26.6] | 0.042 | 6 |" in text
    assert "| VAE ceiling (its own round trip) | 0.0101 [0.009, 0.011] | 0.033 | 0.9 | undefined | — | — |" in text
    assert "| physics baseline (log-distance, no learning) | 0.31 [0.28, 0.34] |" in text
    assert 'RadioDiffPipeline.from_pretrained("someone/radio-ldm")' in text
    assert 'DiffusionPipeline.from_pretrained("someone/radio-ldm", trust_remote_code=True)' in text
    assert "samples with 2 steps, the ones this run was\nconfigured and evaluated with" in text
    assert "`FlowMatchEulerDiscreteScheduler`" in text and "shift factor\n0.1 and scaling factor 0.5" in text
    assert "**synthetic** maps only" in text and "@article{radiodiff" in text and "@article{radiounet" in text
    assert "![The trainer's sample" in text and "samples/sample-250.png" in text
    assert "| batch size | 16 |" in text


def test_an_unevaluated_run_says_so_and_has_no_model_index(pipeline_run):
    (pipeline_run / "metrics.json").unlink()
    card = render_pipeline_model_card(pipeline_run)
    assert "has not been evaluated" in str(card) and "model-index" not in card.data.to_dict()
    assert "USER/NAME" in str(card)


def test_a_folder_without_its_code_gets_the_radiodiff_load_only_and_the_old_default_steps(pipeline_run, hub):
    index_file = pipeline_run / "pipeline" / "model_index.json"
    index = json.loads(index_file.read_text())
    index.update(_class_name="RadioDiffPipeline",
                 condition_encoder=["radiodiff.models.condition_encoder", "RadioMapConditionEncoder"])
    del index["default_num_inference_steps"]
    index_file.write_text(json.dumps(index))
    for code in (pipeline_run / "pipeline").rglob("*.py"):
        code.unlink()
    text = str(render_pipeline_model_card(pipeline_run, "someone/radio-ldm"))
    assert "trust_remote_code" not in text and "does not carry the pipeline's code" in text
    assert "samples with 5 steps" in text
    push_to_hub(pipeline_run, "someone/radio-ldm", token="hf_test_token")
    assert not any(name.endswith(".py") for name in hub.uploaded_files())


def test_card_command_writes_the_pipeline_card(pipeline_run, capsys):
    assert main(["card", str(pipeline_run), "--repo-id", "someone/radio-ldm"]) == 0
    assert ModelCard.load(pipeline_run / "README.md").data.library_name == "diffusers"
    assert "RadioDiffPipeline" in (pipeline_run / "README.md").read_text()


def test_a_pipeline_without_safetensors_weights_gets_no_card(pipeline_run):
    (pipeline_run / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(HubError, match="expected unet/config.json and unet/diffusion_pytorch_model.safetensors"):
        write_pipeline_model_card(pipeline_run)


def test_push_uploads_the_pipeline_at_the_root_with_card_samples_and_metrics_only(pipeline_run, hub):
    push_to_hub(pipeline_run, "someone/radio-ldm", token="hf_test_token")
    assert hub.uploaded_files() == {
        "README.md", "model_index.json", "scheduler/scheduler_config.json",
        "pipeline_radiodiff.py", "radio_map_pipeline_utils.py", "condition_encoder/condition_encoder.py",  # the code
        *(f"{c}/{f}" for c in ("vae", "unet", "condition_encoder")
          for f in ("config.json", "diffusion_pytorch_model.safetensors")),
        "samples/sample-250.png", "metrics.json",
    }
    assert len(hub.commits) == 1 and hub.commits[0]["commit_message"] == "Upload RadioDiff pipeline"
    assert 'from_pretrained("someone/radio-ldm")' in (pipeline_run / "README.md").read_text()


def test_nothing_machine_local_is_uploaded_not_even_the_path_diffusers_records_in_configs(pipeline_run, hub):
    local_configs = (pipeline_run / "pipeline" / "vae" / "config.json").read_text()
    assert "alice-workstation" in local_configs  # diffusers' _name_or_path: the reason for the stripping
    push_to_hub(pipeline_run, "someone/radio-ldm", token="hf_test_token")
    for name, content in hub.uploaded().items():
        for local in ("alice-workstation", str(pipeline_run), str(pipeline_run.parent)):
            assert local.encode() not in content, f"{name} holds {local}"
    uploaded_vae = json.loads(hub.uploaded()["vae/config.json"])
    assert uploaded_vae["latent_channels"] == 3 and "_name_or_path" not in uploaded_vae


def test_push_without_a_token_or_offline_touches_nothing(pipeline_run, hub, no_token, capsys):
    before = folder_state(pipeline_run)
    assert main(["push", str(pipeline_run), "--repo-id", "someone/radio-ldm"]) == 2
    assert "radiodiff push: error: no Hugging Face token" in capsys.readouterr().err
    assert folder_state(pipeline_run) == before and hub.created == []
    with pytest.raises(HubError, match="a second-stage run has no discriminator"):
        push_to_hub(pipeline_run, "someone/radio-ldm", include_discriminator=True, token="hf_test_token")
