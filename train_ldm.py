"""Train RadioDiff's second stage: `accelerate launch train_ldm.py --config configs/ldm_quickstart.yaml [key=value ...]`."""

from radiodiff.training import main_ldm

if __name__ == "__main__":
    raise SystemExit(main_ldm())
