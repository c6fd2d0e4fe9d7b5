"""Small in-memory radio-map datasets: items shaped like ``radiodiff.data.build_dataset``'s."""

from __future__ import annotations

import torch


def radio_map_items(count: int, size: int = 32, *, with_conditions: bool = False) -> list[dict]:
    """``count`` maps of path gain decaying from a transmitter, buildings dark, in [-1, 1], named ``"city_tx"``."""
    grid = torch.linspace(0, 1, size)
    items = []
    for index in range(count):
        tx_row, tx_col = 0.2 + 0.6 * (index % 3) / 2, 0.3 + 0.4 * (index % 2)
        distance = ((grid[:, None] - tx_row) ** 2 + (grid[None, :] - tx_col) ** 2).sqrt()
        buildings = torch.zeros(size, size)
        top, left = (3 + 2 * index) % (size // 2), (5 * index) % (size // 2)
        buildings[top : top + size // 4, left : left + size // 3] = 1.0
        gain = (1.0 - 1.6 * distance).clamp(-1, 1)
        gain = torch.where(buildings > 0, torch.full_like(gain, -1.0), gain)
        item = {"gain_map": gain[None].float(), "name": f"{index // 4}_{index % 4}"}
        if with_conditions:
            item["buildings"] = buildings[None]
            item["transmitter"] = (-(distance**2) / 0.002).exp()[None]
        items.append(item)
    return items


def write_tiny_run(folder, vae) -> tuple[str, str]:
    """A config of 14 synthetic 32x32 cities (2 transmitters each: 24 train, 2 val, 2 test maps) and ``vae``
    saved beside it with plain and EMA weights, as a training run leaves them. Returns (config, model folder)."""
    config = folder / "config.yaml"
    config.write_text(
        "data:\n  synthetic:\n    maps: 14\n    tx_per_map: 2\n    size: 32\n"
        f"    cache_dir: {folder / 'synthetic'}\n"
    )
    vae.save_pretrained(folder / "vae")
    vae.save_pretrained(folder / "vae", variant="ema")
    return str(config), str(folder / "vae")


def tiny_pipeline(formulation: str = "radiodiff", size: int = 32, vae=None):
    """A RadioDiffPipeline of tiny random components for ``size`` x ``size`` maps (a 4x VAE unless given one)."""
    from radiodiff.models import RadioDiffVAE, build_condition_encoder, build_denoiser
    from radiodiff.pipelines import RadioDiffPipeline
    from radiodiff.schedulers import build_formulation

    torch.manual_seed(1)
    if vae is None:
        vae = RadioDiffVAE.from_block_channels((8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=size,
                                               scaling_factor=0.5, shift_factor=0.1)
    encoder = build_condition_encoder("tiny", downsampling_factor=4)
    formulation = build_formulation(formulation)
    unet = build_denoiser("tiny", vae.config.latent_channels, encoder.config.out_channels,
                          formulation.outputs_per_latent_channel(), size // 4)
    pipe = RadioDiffPipeline(vae=vae, unet=unet, condition_encoder=encoder, scheduler=formulation.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_radiounet_pipeline(size: int = 32):
    """A RadioUNetPipeline of one tiny random U-Net for ``size`` x ``size`` maps, its maps away from zero."""
    from radiodiff.models import RadioUNetModel
    from radiodiff.pipelines import RadioUNetPipeline

    torch.manual_seed(2)
    model = RadioUNetModel.from_preset("unet", sample_size=size, first_down_channels=(4, 8, 8, 8, 8, 8, 8),
                                       first_up_channels=(8, 8, 8, 8, 8, 4), first_head_channels=4)
    with torch.no_grad():
        # the head ends in a ReLU: a random network's maps are mostly 0, where every model would score alike
        model.first_unet.head[1][0].bias.fill_(0.3)
    return RadioUNetPipeline(unet=model)


def tiny_pixel_pipeline(formulation: str = "radiodiff", size: int = 32):
    """A RadioDiffPipeline without a VAE: RadioUNet's U-Net (tiny widths) denoising ``size`` x ``size`` maps."""
    from radiodiff.models import RadioUNetDenoiser, build_condition_encoder
    from radiodiff.pipelines import RadioDiffPipeline
    from radiodiff.schedulers import build_formulation

    torch.manual_seed(3)
    encoder = build_condition_encoder("radiounet", downsampling_factor=1)
    formulation = build_formulation(formulation)
    unet = RadioUNetDenoiser(sample_size=size, in_channels=1 + encoder.config.out_channels,
                             out_channels=formulation.outputs_per_latent_channel(), down_channels=(4, 8, 8, 8, 8, 8, 8),
                             up_channels=(8, 8, 8, 8, 8, 4), head_channels=4)
    pipe = RadioDiffPipeline(vae=None, unet=unet, condition_encoder=encoder, scheduler=formulation.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
