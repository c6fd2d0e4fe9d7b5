import pytest
import torch
from safetensors.torch import load_file

from radiodiff import PatchGANDiscriminator


def test_original_settings_have_2_763_585_parameters_and_30x30_logits():
    discriminator = PatchGANDiscriminator(in_channels=1, ndf=64, n_layers=3)
    assert sum(p.numel() for p in discriminator.parameters()) == 2_763_585
    with torch.no_grad():
        logits = discriminator(torch.zeros(2, 1, 256, 256))
    assert logits.shape == (2, 1, 30, 30)


def test_taming_weight_init():
    torch.manual_seed(0)
    discriminator = PatchGANDiscriminator(ndf=64)
    first_conv = discriminator.main[0].weight
    assert abs(first_conv.std().item() - 0.02) < 0.004
    batch_norm = discriminator.main[3]
    assert isinstance(batch_norm, torch.nn.BatchNorm2d)
    assert abs(batch_norm.weight.mean().item() - 1.0) < 0.01
    assert torch.all(batch_norm.bias == 0)
    # convolutions followed by BatchNorm have no bias, as in taming
    assert discriminator.main[2].bias is None


def test_actnorm_initialises_from_the_first_training_batch():
    torch.manual_seed(0)
    discriminator = PatchGANDiscriminator(ndf=8, n_layers=2, norm="actnorm").train()
    actnorm = discriminator.main[3]
    assert actnorm.initialized.item() == 0
    discriminator(torch.randn(4, 1, 32, 32))
    assert actnorm.initialized.item() == 1
    loc_after_first = actnorm.loc.detach().clone()
    discriminator(torch.randn(4, 1, 32, 32) * 5)
    torch.testing.assert_close(actnorm.loc.detach(), loc_after_first)


@pytest.mark.parametrize("norm", ["batch", "actnorm"])
def test_save_and_load_round_trip_through_safetensors(norm, tmp_path):
    torch.manual_seed(0)
    discriminator = PatchGANDiscriminator(ndf=8, n_layers=2, norm=norm)
    discriminator(torch.randn(2, 1, 32, 32))  # set BatchNorm statistics / ActNorm initialisation
    discriminator.eval().save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    stored = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert set(stored) == set(discriminator.state_dict())

    loaded = PatchGANDiscriminator.from_pretrained(tmp_path).eval()
    assert loaded.config.norm == norm and loaded.config.n_layers == 2
    probe = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(probe), discriminator(probe))


def test_unknown_norm_is_refused():
    with pytest.raises(ValueError, match="norm"):
        PatchGANDiscriminator(norm="instance")


def _actnorm_rank(rank: int, world_size: int, port: int, batches: torch.Tensor, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(0)
        discriminator = PatchGANDiscriminator(ndf=8, n_layers=2, norm="actnorm").train()
        discriminator(batches[rank])  # each rank's own first batch
        actnorm = discriminator.main[3]
        results.put((rank, actnorm.loc.detach().clone(), actnorm.scale.detach().clone()))
    finally:
        torch.distributed.destroy_process_group()


def test_actnorm_initialises_from_the_first_batches_of_all_processes_together():
    import multiprocessing
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torch.manual_seed(1)
    batches = torch.stack([torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32) * 3 + 1])  # unlike batches
    # spawned, not forked: a child forked from a parent whose OpenMP threads have run can deadlock in its first op
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    ranks = [context.Process(target=_actnorm_rank, args=(rank, 2, port, batches, results)) for rank in range(2)]
    for process in ranks:
        process.start()
    received = dict((rank, (loc, scale)) for rank, loc, scale in (results.get(timeout=120) for _ in ranks))
    for process in ranks:
        process.join(60)
        assert process.exitcode == 0
    torch.testing.assert_close(received[0], received[1], rtol=0, atol=0)

    # the same as one process initialised from both batches at once
    torch.manual_seed(0)
    together = PatchGANDiscriminator(ndf=8, n_layers=2, norm="actnorm").train()
    together(batches.flatten(0, 1))
    torch.testing.assert_close(received[0][0], together.main[3].loc.detach())
    torch.testing.assert_close(received[0][1], together.main[3].scale.detach())
