"""Train RadioUNet, the supervised baseline: `accelerate launch train_radiounet.py --config configs/radiounet_quickstart.yaml [key=value ...]`."""

from radiodiff.training import main_radiounet

if __name__ == "__main__":
    raise SystemExit(main_radiounet())
