"""What the package declares is true: its dependency floors and its license."""

import configparser

from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO
from radiodiff.hub import LICENSE

# the oldest release of each library that has what radiodiff calls, and where that was checked
REQUIRED_MINIMUM = {
    # AdamW(fused=True) on CPU tensors (train.fused_optimizer, on by default): CUDA-only up to torch 2.3
    "torch": "2.4",
    # EMAModel(foreach=True) (diffusers PR 7685, 0.28); AutoencoderKL's shift_factor (the SD3 release, 0.29)
    "diffusers": "0.29",
    # report_to: trackio (accelerate PR 3669, July 2025, in 1.9)
    "accelerate": "1.9",
    # huggingface_hub.constants.is_offline_mode (huggingface_hub PRs 3593/3598, released in 1.2.1)
    "huggingface_hub": "1.2.1",
}


def install_requires() -> dict[str, Requirement]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    requirements = [Requirement(line) for line in setup["options"]["install_requires"].split("\n") if line.strip()]
    return {requirement.name: requirement for requirement in requirements}


def floor(requirement: Requirement) -> Version:
    (lower,) = [spec for spec in requirement.specifier if spec.operator == ">="]
    return Version(lower.version)


def test_dependency_floors_are_at_least_the_versions_whose_apis_the_code_calls():
    declared = install_requires()
    for name, minimum in REQUIRED_MINIMUM.items():
        assert floor(declared[name]) >= Version(minimum), f"{name}: setup.cfg says {declared[name]}, needs >={minimum}"


def test_the_mit_license_the_card_declares_ships_with_the_package():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    license_text = (REPO / "LICENSE").read_text()
    assert LICENSE == "mit" and setup["metadata"]["license"] == "MIT"
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 RadioDiff contributors" in license_text
    assert setup["metadata"]["license_files"] == "LICENSE"
