"""Run under `torchrun --nproc_per_node 2`: trains a tiny config and writes each rank's weights to its own file."""

import sys
from pathlib import Path

from safetensors.torch import save_file

from radiodiff.config import load_config
from radiodiff.training.trainer import build_trainer


def main(output_dir: str, overrides: list[str]) -> None:
    config = load_config(None, overrides)
    trainer = build_trainer(config)
    accelerator = trainer.accelerator
    trainer.run()
    rank = accelerator.process_index
    weights = {f"vae.{k}": v.contiguous() for k, v in trainer.raw_vae.state_dict().items()}
    weights.update({f"discriminator.{k}": p.detach().contiguous() for k, p in trainer.raw_discriminator.named_parameters()})
    weights["loss.logvar"] = trainer.loss_fn.logvar.detach().reshape(1)
    save_file(weights, str(Path(output_dir) / f"rank{rank}.safetensors"))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
