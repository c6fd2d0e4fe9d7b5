"""Train the RadioDiff VAE: `accelerate launch train_vae.py --config configs/quickstart.yaml [key=value ...]`."""

from radiodiff.training import main_vae

if __name__ == "__main__":
    raise SystemExit(main_vae())
