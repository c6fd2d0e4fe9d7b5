"""Run under `torchrun --nproc_per_node 2`: trains a tiny config of one stage ("vae", "ldm" or "radiounet") and writes
each rank's trained weights to its own file. A first override ``--resume=CHECKPOINT`` resumes that checkpoint first."""

import sys
from pathlib import Path

from safetensors.torch import save_file

from radiodiff.config import load_vae_config, read_ldm_config, read_radiounet_config
from radiodiff.training.ldm_trainer import build_ldm_trainer
from radiodiff.training.radiounet_trainer import build_radiounet_trainer
from radiodiff.training.vae_trainer import build_vae_trainer


def main(stage: str, output_dir: str, overrides: list[str]) -> None:
    resume = overrides.pop(0).removeprefix("--resume=") if overrides and overrides[0].startswith("--resume=") else None
    if stage == "vae":
        trainer = build_vae_trainer(load_vae_config(None, overrides))
    elif stage == "radiounet":
        trainer = build_radiounet_trainer(read_radiounet_config(None, overrides)[0])
    else:
        trainer = build_ldm_trainer(read_ldm_config(None, overrides)[0])
    accelerator = trainer.accelerator
    if resume is not None:
        trainer.resume(Path(resume))
    trainer.run()
    rank = accelerator.process_index
    # parameters, not buffers: BatchNorm's running statistics are each rank's own
    weights = {
        f"{name}.{k}": p.detach().contiguous()
        for name, module in trainer.trained_modules().items()
        for k, p in module.named_parameters()
    }
    parts = trainer.parts
    weights.update({f"ema.{i}": p.contiguous() for i, p in enumerate(parts.ema.shadow_params)} if parts.ema else {})
    weights.update({name: tensor.detach().reshape(-1) for name, tensor in parts.extra_trained_tensors.items()})
    save_file(weights, str(Path(output_dir) / f"rank{rank}.safetensors"))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
