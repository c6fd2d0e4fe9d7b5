"""The training fast path: what it turns on by default, and that a non-finite loss still skips the whole step."""

import itertools

import pytest
import torch

from tests.helpers.tiny_runs import tiny_training_overrides
from radiodiff.config import load_vae_config
from radiodiff.losses import VAEGANLoss
from radiodiff.training.trainer import CPU_BF16_PROBES, Trainer, cpu_has_bf16_arithmetic, resolved_mixed_precision
from radiodiff.training.vae_trainer import build_vae_trainer


@pytest.mark.parametrize(
    "cuda, gpu_bf16, cpu_bf16, expected",
    [
        (False, False, False, "no"),
        (False, False, True, "bf16"),
        (True, False, True, "no"),
        (True, True, False, "bf16"),
    ],
)
def test_auto_precision_is_bf16_where_the_hardware_computes_it(monkeypatch, cuda, gpu_bf16, cpu_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: gpu_bf16)
    for probe in CPU_BF16_PROBES:
        monkeypatch.setattr(torch.cpu, probe, lambda: cpu_bf16, raising=False)
    assert resolved_mixed_precision(load_vae_config(None).train) == expected


def test_auto_precision_reads_this_cpu(monkeypatch):
    """The probes exist in this torch and agree with the CPU's own flags where Linux lists them."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert all(hasattr(torch.cpu, probe) for probe in CPU_BF16_PROBES)
    flags = cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags here")
    native = bool(flags & {"avx512_bf16", "amx_tile"})
    assert cpu_has_bf16_arithmetic() == native
    assert resolved_mixed_precision(load_vae_config(None).train) == ("bf16" if native else "no")


def cpu_flags() -> set[str] | None:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return None
    lines = [line for line in text.splitlines() if line.startswith("flags")]
    return set(lines[0].split(":", 1)[1].split()) if lines else None


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolved_mixed_precision(load_vae_config(None, ["train.mixed_precision='no'"]).train) == "no"


def tiny_trainer(tmp_path, cache, overrides=()) -> Trainer:
    config = load_vae_config(None, tiny_training_overrides(tmp_path / "run", cache) + ["loss.disc_start=0", *overrides])
    return build_vae_trainer(config)


def test_bf16_autocast_trains_on_the_cpu(tmp_path, synthetic_cache):
    """What `auto` picks on a CPU with bf16 arithmetic: the convolutions run in bf16, the losses in fp32, and the
    fp32 master weights take the step."""
    trainer = tiny_trainer(tmp_path, synthetic_cache, ["train.mixed_precision=bf16"])
    assert trainer.accelerator.mixed_precision == "bf16"
    dtypes = []
    trainer.raw_vae.decoder.conv_out.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    before = {name: p.detach().clone() for name, p in trainer.raw_vae.named_parameters()}
    logs = trainer.train_step(trainer.micro_batches())
    assert logs is not None and dtypes == [torch.bfloat16]
    assert all(torch.isfinite(value).all() and value.dtype == torch.float32 for value in logs.values())
    after = dict(trainer.raw_vae.named_parameters())
    assert all(after[name].dtype == torch.float32 for name in before)
    assert all(not torch.equal(after[name], before[name]) for name in ("encoder.conv_in.weight", "decoder.conv_out.weight"))


def test_optimizers_are_fused_by_default_and_plain_on_request(tmp_path, synthetic_cache):
    fused = tiny_trainer(tmp_path, synthetic_cache)
    assert list(fused.parts.optimizers) == ["vae.adamw", "discriminator.adamw"]
    assert all(trained.optimizer.optimizer.defaults["fused"] for trained in fused.parts.optimizers.values())
    plain = tiny_trainer(tmp_path, synthetic_cache, ["train.fused_optimizer=false"])
    assert not plain.parts.optimizers["vae.adamw"].optimizer.optimizer.defaults["fused"]


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
