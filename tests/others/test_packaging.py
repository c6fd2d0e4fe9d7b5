"""What the package declares is true: its dependency floors and its license."""

import configparser

from packaging.requirements import Requirement
from packaging.version import Version

from tests.helpers.tiny_runs import REPO
from radiodiff.hub import LICENSE

# the oldest release of each library that has what radiodiff calls; .ci/floors.txt pins the last four and CI runs
# the fast subset on them (docs/DEPENDENCIES.md)
REQUIRED_MINIMUM = {
    # AdamW(fused=True) on CPU tensors (train.fused_optimizer, on by default): CUDA-only up to torch 2.3
    "torch": "2.4",
    # ModelMixin.compile_repeated_blocks (train.compile, 0.35); DiffusionPipeline._get_signature_types resolving the
    # string annotations of RadioDiffPipeline.__init__ (`from __future__ import annotations`) with get_type_hints:
    # up to 0.36 from_pretrained fails with KeyError: 'unet'; and DiffusionPipeline.from_pretrained of a local folder
    # that ships code refusing to run it without trust_remote_code=True (0.37 runs it unasked)
    "diffusers": "0.38",
    # report_to: trackio (accelerate PR 3669, July 2025, in 1.9)
    "accelerate": "1.9",
    # huggingface_hub.constants.is_offline_mode (huggingface_hub PRs 3593/3598, released in 1.2.1)
    "huggingface_hub": "1.2.1",
    # with_format("torch") on the torchvision 0.29 the tests pin: the torch formatter's `from torchvision.io import
    # VideoReader` (gone from torchvision) is guarded from 4.8.4; before, it raises ImportError
    "datasets": "4.8.4",
}
CI_FLOORS = REPO / ".ci" / "floors.txt"


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


def ci_floors() -> dict[str, Requirement]:
    lines = [line.strip() for line in CI_FLOORS.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {requirement.name: requirement for requirement in requirements}


def test_the_floors_ci_installs_are_exactly_setup_cfg_s_floors():
    declared, pinned = install_requires(), ci_floors()
    assert set(pinned) == set(REQUIRED_MINIMUM) - {"torch"}, f"{CI_FLOORS} pins {sorted(pinned)}"
    for name, pin in pinned.items():
        (exact,) = pin.specifier
        assert exact.operator == "==", f"{CI_FLOORS}: {pin} should pin one release with =="
        assert Version(exact.version) == floor(declared[name]), f"{CI_FLOORS}: {pin}, but setup.cfg says {declared[name]}"


def test_the_mit_license_the_card_declares_ships_with_the_package():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    license_text = (REPO / "LICENSE").read_text()
    assert LICENSE == "mit" and setup["metadata"]["license"] == "MIT"
    assert license_text.startswith("MIT License") and "Copyright (c) 2026 RadioDiff contributors" in license_text
    assert setup["metadata"]["license_files"] == "LICENSE"
