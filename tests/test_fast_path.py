"""The training fast path: what it turns on by default, and that a non-finite loss still skips the whole step."""

import itertools

import pytest
import torch

from conftest import tiny_training_overrides
from radiodiff.config import load_config
from radiodiff.losses import VAEGANLoss
from radiodiff.training.trainer import Trainer, resolved_mixed_precision
from radiodiff.training.vae_trainer import build_trainer


@pytest.mark.parametrize(
    "cuda, bf16_supported, expected", [(False, False, "no"), (True, False, "no"), (True, True, "bf16")]
)
def test_auto_precision_is_bf16_only_on_a_gpu_that_supports_it(monkeypatch, cuda, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16_supported)
    assert resolved_mixed_precision(load_config(None).train) == expected


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolved_mixed_precision(load_config(None, ["train.mixed_precision='no'"]).train) == "no"


def tiny_trainer(tmp_path, cache, overrides=()) -> Trainer:
    config = load_config(None, tiny_training_overrides(tmp_path / "run", cache) + ["loss.disc_start=0", *overrides])
    return build_trainer(config)


def test_optimizers_are_fused_by_default_and_plain_on_request(tmp_path, synthetic_cache):
    fused = tiny_trainer(tmp_path, synthetic_cache)
    (optimizer_g,) = fused.optimizers_g
    assert optimizer_g.optimizer.defaults["fused"] and fused.optimizer_d.optimizer.defaults["fused"]
    plain = tiny_trainer(tmp_path, synthetic_cache, ["train.fused_optimizer=false"])
    assert not plain.optimizers_g[0].optimizer.defaults["fused"]


def test_a_nonfinite_discriminator_loss_skips_the_step_and_leaves_every_weight(tmp_path, synthetic_cache, monkeypatch):
    trainer = tiny_trainer(tmp_path, synthetic_cache)
    batches = itertools.cycle(list(itertools.islice(trainer.micro_batches(), 1)))
    assert trainer.train_step(batches) is not None  # a good step first, so the optimizers have state
    before = {name: p.detach().clone() for name, p in itertools.chain(
        trainer.raw_vae.named_parameters(prefix="vae"), trainer.raw_discriminator.named_parameters(prefix="d"))}

    original = VAEGANLoss.discriminator_loss

    def poisoned(self, *args, **kwargs):
        loss, logs = original(self, *args, **kwargs)
        return loss * float("inf"), logs

    monkeypatch.setattr(VAEGANLoss, "discriminator_loss", poisoned)
    assert trainer.train_step(batches) is None
    for name, parameter in itertools.chain(
        trainer.raw_vae.named_parameters(prefix="vae"), trainer.raw_discriminator.named_parameters(prefix="d")
    ):
        assert torch.equal(parameter, before[name]), name
        assert parameter.grad is None, name
