"""The formulation objects: each one's training pair, output split, loss, function evaluations and scheduler, and
the registry that finds a formulation by its config name or by the scheduler a pipeline was saved with."""

import inspect

import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

from tests.helpers.map_fixtures import tiny_pipeline
from radiodiff.config import DiffusionConfig
from radiodiff.losses import flow_matching_loss, latent_regression_loss, radiodiff_loss
from radiodiff.schedulers import (
    FORMULATIONS,
    FlowMatchingFormulation,
    LatentRegressionFormulation,
    RadioDiffFormulation,
    RadioDiffScheduler,
    build_formulation,
    formulation_class,
    formulation_of,
)

LATENT = (4, 3, 8, 8)


def clean_latents() -> torch.Tensor:
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(10))


def test_radiodiff_pair_is_x_t_at_timesteps_in_the_scheduler_s_units_with_c_and_eps_targets():
    formulation = build_formulation("radiodiff")
    x0 = clean_latents()
    pair = formulation.training_pair(x0, torch.Generator().manual_seed(0))
    # the draws of the trainer before formulations were objects: t ~ U(t_min, 1), then the noise
    generator = torch.Generator().manual_seed(0)
    t = 1e-4 + (1 - 1e-4) * torch.rand(LATENT[0], generator=generator)
    noise = torch.randn(LATENT, generator=generator)
    assert torch.equal(pair.timesteps, t * 1000)
    assert set(pair.targets) == {"C", "eps"} and formulation.target_names == ("C", "eps")
    assert torch.equal(pair.targets["C"], -x0) and torch.equal(pair.targets["eps"], noise)
    w1, w2 = pair.loss_weights  # RadioDiff's, at the drawn t
    assert torch.equal(w1, 2 * torch.exp(1 - t)) and torch.equal(w2, torch.exp(t.sqrt()))
    # x_t at the drawn t itself, not at t rounded through the timesteps
    t = t.reshape(-1, 1, 1, 1)
    assert torch.equal(pair.model_input, (1 - t) * x0 + t.sqrt() * noise)
    torch.testing.assert_close(pair.model_input, formulation.scheduler.add_noise(x0, noise, pair.timesteps))


def test_flow_matching_pair_is_the_straight_path_at_sigma_times_1000_with_the_velocity_target():
    formulation = build_formulation("flow_matching")
    x0 = clean_latents()
    pair = formulation.training_pair(x0, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    sigma = torch.rand(LATENT[0], generator=generator)
    noise = torch.randn(LATENT, generator=generator)
    assert torch.equal(pair.timesteps, sigma * 1000)
    assert list(pair.targets) == ["velocity"] and torch.equal(pair.targets["velocity"], noise - x0)
    sigma = sigma.reshape(-1, 1, 1, 1)
    assert torch.equal(pair.model_input, sigma * noise + (1 - sigma) * x0)


def test_regression_pair_is_a_zero_latent_at_timestep_zero_with_the_clean_latent_target_and_draws_nothing():
    formulation = build_formulation("regression")
    x0, generator = clean_latents(), torch.Generator().manual_seed(0)
    pair = formulation.training_pair(x0, generator)
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())
    assert torch.equal(pair.model_input, torch.zeros(LATENT)) and torch.equal(pair.timesteps, torch.zeros(LATENT[0]))
    assert list(pair.targets) == ["x0"] and pair.targets["x0"] is x0
    # what the pipeline gives the UNet: its starting noise times init_noise_sigma, at the scheduler's one timestep
    formulation.scheduler.set_timesteps(5)
    assert formulation.scheduler.init_noise_sigma == 0 and formulation.scheduler.timesteps.tolist() == [0.0]
    output = torch.randn(LATENT)
    assert torch.equal(formulation.loss(output, pair)[0], latent_regression_loss(output, x0)[0])
    assert torch.equal(formulation.scheduler.step(output, 0.0, pair.model_input).prev_sample, output)


@pytest.mark.parametrize("name", ["radiodiff", "flow_matching"])
def test_the_pair_is_drawn_from_the_given_generator_only(name):
    formulation, x0 = build_formulation(name), clean_latents()
    first = formulation.training_pair(x0, torch.Generator().manual_seed(3))
    again = formulation.training_pair(x0, torch.Generator().manual_seed(3))
    other = formulation.training_pair(x0, torch.Generator().manual_seed(4))
    assert torch.equal(first.model_input, again.model_input) and torch.equal(first.timesteps, again.timesteps)
    assert not torch.equal(first.model_input, other.model_input)


def test_the_output_splits_into_the_targets_in_their_order():
    c_hat, eps_hat = torch.randn(LATENT), torch.randn(LATENT)
    predicted = build_formulation("radiodiff").split_output(torch.cat([c_hat, eps_hat], dim=1))
    assert list(predicted) == ["C", "eps"]
    assert torch.equal(predicted["C"], c_hat) and torch.equal(predicted["eps"], eps_hat)
    velocity = torch.randn(LATENT)
    assert torch.equal(build_formulation("flow_matching").split_output(velocity)["velocity"], velocity)


@pytest.mark.parametrize("weighting_loss, use_l1", [(True, True), (False, False)])
def test_radiodiff_loss_is_radiodiff_loss_with_the_pair_s_weights(weighting_loss, use_l1):
    formulation = build_formulation("radiodiff", DiffusionConfig(weighting_loss=weighting_loss, use_l1=use_l1))
    pair = formulation.training_pair(clean_latents(), torch.Generator().manual_seed(0))
    assert (pair.loss_weights is None) == (not weighting_loss)
    output = torch.randn(LATENT[0], 6, 8, 8, generator=torch.Generator().manual_seed(1))
    loss, logs = formulation.loss(output, pair)
    expected, _ = radiodiff_loss(output[:, :3], output[:, 3:], pair.targets["C"], pair.targets["eps"],
                                 pair.loss_weights, use_l1=use_l1)
    assert torch.equal(loss, expected)
    assert set(logs) == {"loss", "loss_c", "loss_eps"}
    perfect = torch.cat([pair.targets["C"], pair.targets["eps"]], dim=1)
    assert formulation.loss(perfect, pair)[0].item() == 0.0


def test_flow_matching_loss_is_the_velocity_mse():
    formulation = build_formulation("flow_matching")
    pair = formulation.training_pair(clean_latents(), torch.Generator().manual_seed(0))
    output = torch.randn(LATENT)
    assert torch.equal(formulation.loss(output, pair)[0], flow_matching_loss(output, pair.targets["velocity"])[0])
    assert formulation.loss(pair.targets["velocity"], pair)[0].item() == 0.0


def test_radiodiff_s_scheduler_carries_the_run_s_sampler_settings():
    scheduler = build_formulation("radiodiff", DiffusionConfig(split_last_step=False, eta=0.25)).scheduler
    assert isinstance(scheduler, RadioDiffScheduler)
    assert (scheduler.config.split_last_step, scheduler.config.eta) == (False, 0.25)
    assert isinstance(build_formulation("flow_matching").scheduler, FlowMatchEulerDiscreteScheduler)


@pytest.mark.parametrize("name, split_last_step, steps, expected", [
    ("radiodiff", True, 1, 2), ("radiodiff", True, 3, 4), ("radiodiff", False, 3, 3), ("flow_matching", True, 3, 3),
    ("regression", True, 1, 1), ("regression", True, 5, 1),
])
def test_function_evaluations_are_the_unet_calls_of_the_pipeline(name, split_last_step, steps, expected):
    pipe = tiny_pipeline(name)
    pipe.scheduler = build_formulation(name, DiffusionConfig(split_last_step=split_last_step)).scheduler
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))
    pipe(torch.zeros(32, 32), (3, 4), num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
    hook.remove()
    assert formulation_of(pipe.scheduler).function_evaluations(steps) == len(calls) == expected


@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_takes_steps_says_whether_the_step_count_changes_the_map(name):
    pipe = tiny_pipeline(name)
    maps = [pipe(torch.zeros(32, 32), (3, 4), num_inference_steps=steps, generator=torch.Generator().manual_seed(0),
                 output_type="pt").images for steps in (1, 3)]
    assert formulation_of(pipe.scheduler).takes_steps == (not torch.equal(*maps))


@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_the_formulation_and_its_scheduler_say_the_same_to_the_pipeline(name):
    """The pipeline file ships alone and asks the scheduler; the formulation must agree with what it hears."""
    formulation = build_formulation(name)
    scheduler = formulation.scheduler
    assert formulation.outputs_per_latent_channel() == getattr(scheduler, "outputs_per_latent_channel", 1)
    assert formulation.takes_eta == ("eta" in inspect.signature(scheduler.step).parameters)
    assert formulation.outputs_per_latent_channel() == len(formulation.target_names)


def test_the_registry_has_each_formulation_under_its_config_name():
    assert FORMULATIONS == {"radiodiff": RadioDiffFormulation, "flow_matching": FlowMatchingFormulation,
                            "regression": LatentRegressionFormulation}
    assert all(formulation_class(name).name == name for name in FORMULATIONS)


@pytest.mark.parametrize("name", list(FORMULATIONS))
def test_a_scheduler_or_its_saved_class_name_gives_its_formulation(name, tmp_path):
    scheduler = build_formulation(name, DiffusionConfig(split_last_step=False)).scheduler
    found = formulation_of(scheduler)
    assert found.name == name and found.scheduler is scheduler
    assert formulation_of(type(scheduler).__name__).name == name
    scheduler.save_pretrained(tmp_path)
    assert formulation_of(type(scheduler).from_pretrained(tmp_path)).name == name


def test_an_unknown_name_or_scheduler_is_one_error_naming_it():
    with pytest.raises(ValueError, match=r"^formulation: 'ddpm'; expected one of 'radiodiff', 'flow_matching', "
                                         r"'regression'$"):
        formulation_class("ddpm")
    with pytest.raises(ValueError, match=r"^formulation: 'ddpm'"):
        build_formulation("ddpm")
    with pytest.raises(ValueError, match=r"^scheduler: DDPMScheduler; expected the scheduler of a formulation: "
                                         r"RadioDiffScheduler \(radiodiff\), FlowMatchEulerDiscreteScheduler"):
        formulation_of(DDPMScheduler())

