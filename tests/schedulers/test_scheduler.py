"""RadioDiff's decoupled process: the sampler's step is the Brownian-bridge posterior, derived here independently."""

import math

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from radiodiff.losses import flow_matching_loss, radiodiff_loss
from radiodiff.schedulers import RadioDiffScheduler


def perfect_prediction(x_t: torch.Tensor, x0: torch.Tensor, t: float) -> torch.Tensor:
    """What a denoiser that knows x0 predicts: C = -x0 and the noise that makes x_t, stacked along the channels."""
    return torch.cat([-x0, (x_t - (1 - t) * x0) / math.sqrt(t)], dim=1)


def brownian_conditional(x0: float, x_t: float, t: float, t_prev: float) -> tuple[float, float]:
    """Mean and variance of x_{t_prev} given x_t and x0 for x_u = x0 - x0 u + W_u, by Gaussian conditioning.

    (x_{t_prev}, x_t) is jointly Gaussian with means (1 - u) x0 and the Brownian covariance min(u, v); the
    conditional follows from the Schur complement, with no use of the sampler's formula.
    """
    times = torch.tensor([t_prev, t], dtype=torch.float64)
    mean = (1 - times) * x0
    cov = torch.minimum(times[:, None], times[None, :])
    gain = cov[0, 1] / cov[1, 1]
    return float(mean[0] + gain * (x_t - mean[1])), float(cov[0, 0] - gain * cov[1, 0])


def test_set_timesteps_is_n_uniform_steps_with_the_last_split_as_the_original():
    scheduler = RadioDiffScheduler()
    scheduler.set_timesteps(5)
    assert torch.allclose(scheduler.times, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 1e-4], dtype=torch.float64))
    assert torch.allclose(scheduler.timesteps, scheduler.times.float() * 1000)
    scheduler.set_timesteps(1)
    assert scheduler.times.tolist() == [1.0, 1e-4]


def test_set_timesteps_without_the_split_takes_n_equal_steps():
    scheduler = RadioDiffScheduler(split_last_step=False)
    scheduler.set_timesteps(4)
    assert torch.allclose(scheduler.times, torch.tensor([1.0, 0.75, 0.5, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("steps", [0, -1, 2.5, 10_000])
def test_set_timesteps_rejects_bad_step_counts(steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        RadioDiffScheduler().set_timesteps(steps)


def test_step_refuses_a_timestep_outside_the_schedule():
    scheduler = RadioDiffScheduler()
    sample = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="call set_timesteps"):
        scheduler.step(torch.cat([sample, sample], dim=1), 1000.0, sample)
    scheduler.set_timesteps(5)
    with pytest.raises(ValueError, match="timestep 500 is not one of"):
        scheduler.step(torch.cat([sample, sample], dim=1), 500.0, sample)
    with pytest.raises(ValueError, match=r"model_output: shape \(1, 1, 2, 2\); expected C_hat and eps_hat stacked"):
        scheduler.step(sample, 1000.0, sample)


@pytest.mark.parametrize("index", [0, 2, 4])
def test_step_draws_from_the_brownian_bridge_posterior(index):
    scheduler = RadioDiffScheduler()
    scheduler.set_timesteps(5)
    t, t_prev = float(scheduler.times[index]), float(scheduler.times[index + 1])
    x0_value, x_t_value, draws = 0.7, 0.3, 200_000
    x0 = torch.full((draws, 1, 1, 1), x0_value, dtype=torch.float64)
    x_t = torch.full_like(x0, x_t_value)
    out = scheduler.step(
        perfect_prediction(x_t, x0, t), scheduler.timesteps[index], x_t, generator=torch.Generator().manual_seed(0)
    )
    mean, variance = brownian_conditional(x0_value, x_t_value, t, t_prev)
    standard_error = math.sqrt(variance / draws)
    assert abs(out.prev_sample.mean().item() - mean) < 5 * standard_error
    assert out.prev_sample.var().item() == pytest.approx(variance, rel=0.02)
    assert torch.allclose(out.pred_original_sample, x0)


def test_the_last_step_adds_no_noise_and_takes_the_posterior_mean_to_t_zero():
    scheduler = RadioDiffScheduler()
    scheduler.set_timesteps(5)
    t = 1e-4
    x_t = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    pred_c, pred_eps = torch.randn_like(x_t), torch.randn_like(x_t)
    prediction = torch.cat([pred_c, pred_eps], dim=1)
    first = scheduler.step(prediction, scheduler.timesteps[-1], x_t, generator=torch.Generator().manual_seed(2))
    second = scheduler.step(prediction, scheduler.timesteps[-1], x_t, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first.prev_sample, second.prev_sample)
    x0_hat = x_t - pred_c * t - math.sqrt(t) * pred_eps
    assert torch.allclose(first.pred_original_sample, x0_hat)
    assert torch.allclose(first.prev_sample, x_t + t * x0_hat - math.sqrt(t) * pred_eps)


@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("split_last_step", [True, False])
@pytest.mark.parametrize("steps", [1, 5, 20])
def test_a_perfect_predictor_recovers_x0_in_n_steps(steps, split_last_step, eta):
    scheduler = RadioDiffScheduler(split_last_step=split_last_step, eta=eta)
    generator = torch.Generator().manual_seed(steps)
    x0 = torch.randn(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    sample = scheduler.add_noise(x0, torch.randn_like(x0), torch.tensor(1000.0))
    scheduler.set_timesteps(steps)
    for timestep, t in zip(scheduler.timesteps, scheduler.times.tolist()):
        sample = scheduler.step(perfect_prediction(sample, x0, t), timestep, sample, generator=generator).prev_sample
    assert torch.allclose(sample, x0, atol=1e-10)


@pytest.mark.parametrize("eta", [1.0, 0.5, 0.0])
def test_sampling_with_the_true_x0_keeps_the_forward_marginals(eta):
    """Every intermediate x_t of the chain has the forward process's law N((1 - t) x0, t), whatever share of the
    posterior noise each step draws afresh."""
    scheduler = RadioDiffScheduler(eta=eta)
    scheduler.set_timesteps(5)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((100_000, 1), 0.5, dtype=torch.float64)
    sample = x0 * 0 + torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    for index, (timestep, t) in enumerate(zip(scheduler.timesteps[:-1], scheduler.times.tolist())):
        sample = scheduler.step(perfect_prediction(sample, x0, t), timestep, sample, generator=generator).prev_sample
        t_next = float(scheduler.times[index + 1])
        assert sample.mean().item() == pytest.approx((1 - t_next) * 0.5, abs=0.01)
        assert sample.var().item() == pytest.approx(t_next, rel=0.03, abs=1e-4)


def test_add_noise_is_the_forward_process_per_sample_at_the_scheduler_s_timesteps():
    scheduler = RadioDiffScheduler()
    x0, noise = torch.ones(2, 1, 2, 2), torch.full((2, 1, 2, 2), 2.0)
    noisy = scheduler.add_noise(x0, noise, torch.tensor([250.0, 1000.0]))  # t = 0.25 and 1
    assert torch.allclose(noisy[0], torch.full((1, 2, 2), 0.75 + 0.5 * 2.0))
    assert torch.allclose(noisy[1], noise[1])
    # the units of step's timesteps: at the first one of a schedule, x_t is the pure noise the sampler starts from
    scheduler.set_timesteps(5)
    assert torch.equal(scheduler.add_noise(x0, noise, scheduler.timesteps[0]), noise)
    # training's own entry speaks the process's t
    assert torch.equal(scheduler.add_noise_at_times(x0, noise, torch.tensor([0.25, 1.0])), noisy)


def test_the_sampler_starts_from_unit_noise_and_takes_x_t_as_it_is():
    scheduler = RadioDiffScheduler()
    scheduler.set_timesteps(3)
    sample = torch.randn(2, 3, 4, 4)
    assert scheduler.init_noise_sigma == 1.0
    assert all(scheduler.scale_model_input(sample, timestep) is sample for timestep in scheduler.timesteps)


def test_training_times_are_uniform_on_t_min_to_one_and_seeded():
    scheduler = RadioDiffScheduler()
    times = scheduler.sample_times(50_000, generator=torch.Generator().manual_seed(0))
    again = scheduler.sample_times(50_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(times, again)
    assert times.min() >= 1e-4 and times.max() <= 1.0
    assert times.mean().item() == pytest.approx((1 + 1e-4) / 2, abs=0.01)


def test_targets_and_loss_weights_are_the_originals():
    x0, noise = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    target_c, target_eps = RadioDiffScheduler.training_targets(x0, noise)
    assert torch.equal(target_c, -x0) and torch.equal(target_eps, noise)
    w1, w2 = RadioDiffScheduler.loss_weights(torch.tensor([0.0, 0.25, 1.0]))
    assert torch.allclose(w1, torch.tensor([2 * math.e, 2 * math.exp(0.75), 2.0]))
    assert torch.allclose(w2, torch.tensor([1.0, math.exp(0.5), math.e]))


def test_radiodiff_loss_weights_mse_plus_l1_per_sample_and_halves():
    pred_c, target_c = torch.full((2, 1, 2, 2), 2.0), torch.zeros(2, 1, 2, 2)  # MSE 4, L1 2
    pred_eps, target_eps = torch.full((2, 1, 2, 2), 1.0), torch.zeros(2, 1, 2, 2)  # MSE 1, L1 1
    weights = (torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0]))
    loss, logs = radiodiff_loss(pred_c, pred_eps, target_c, target_eps, weights)
    per_sample = torch.tensor([(1 * 6 + 2 * 2) / 2, (3 * 6 + 0 * 2) / 2])
    assert loss.item() == pytest.approx(per_sample.mean().item())
    assert logs["loss_c"].item() == pytest.approx(3.0) and logs["loss_eps"].item() == pytest.approx(1.0)
    unweighted, _ = radiodiff_loss(pred_c, pred_eps, target_c, target_eps, None)
    assert unweighted.item() == pytest.approx((6 + 2) / 2)
    mse_only, _ = radiodiff_loss(pred_c, pred_eps, target_c, target_eps, None, use_l1=False)
    assert mse_only.item() == pytest.approx(4 + 1)


def test_flow_matching_loss_is_the_velocity_mse():
    velocity = torch.randn(2, 1, 2, 2)
    loss, logs = flow_matching_loss(velocity + 1.0, velocity)
    assert loss.item() == pytest.approx(1.0) and logs["loss"] == loss


def test_flow_matching_euler_with_the_true_velocity_recovers_x0():
    """The diffusers scheduler and our training target agree: following v = noise - x0 lands on x0."""
    scheduler = FlowMatchEulerDiscreteScheduler()
    x0, noise = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    scheduler.set_timesteps(2)
    sample = noise
    for timestep in scheduler.timesteps:
        sample = scheduler.step(noise - x0, timestep, sample).prev_sample
    assert torch.allclose(sample, x0, atol=1e-5)


def test_save_pretrained_round_trips_the_scheduler(tmp_path):
    scheduler = RadioDiffScheduler(t_min=1e-3, split_last_step=False, num_train_timesteps=500, eta=0.3)
    scheduler.save_pretrained(tmp_path)
    assert (tmp_path / "scheduler_config.json").is_file()
    loaded = RadioDiffScheduler.from_pretrained(tmp_path)
    assert dict(loaded.config) == dict(scheduler.config)
    scheduler.set_timesteps(3)
    loaded.set_timesteps(3)
    assert torch.equal(loaded.timesteps, scheduler.timesteps)


def test_t_min_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="t_min: 1.5"):
        RadioDiffScheduler(t_min=1.5)


def test_eta_one_is_the_original_step_and_eta_zero_draws_no_noise():
    scheduler = RadioDiffScheduler()
    scheduler.set_timesteps(4)
    generator = torch.Generator().manual_seed(4)
    x_t = torch.randn(3, 2, 4, 4, generator=generator, dtype=torch.float64)
    pred_c, pred_eps = torch.randn_like(x_t), torch.randn_like(x_t)
    t, t_next = float(scheduler.times[1]), float(scheduler.times[2])
    s = t - t_next
    x0_hat = x_t - pred_c * t - math.sqrt(t) * pred_eps
    original_mean = x_t + s * x0_hat - s / math.sqrt(t) * pred_eps  # the Brownian-bridge posterior's mean
    step = lambda eta, seed: scheduler.step(torch.cat([pred_c, pred_eps], dim=1), scheduler.timesteps[1], x_t, eta=eta,
                                            generator=torch.Generator().manual_seed(seed)).prev_sample
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(step(1.0, 5), original_mean + math.sqrt(s * t_next / t) * noise)
    torch.testing.assert_close(step(None, 5), step(1.0, 5))  # the config's eta, 1 by default
    # deterministic: the same x_{t'} for any generator, x0_hat re-noised with eps_hat to t' (plus t (C_hat + x0_hat),
    # the part of x_t that the two heads' predictions leave unexplained, carried along as the eta = 1 step does)
    torch.testing.assert_close(step(0.0, 6), step(0.0, 7), rtol=0, atol=0)
    torch.testing.assert_close(step(0.0, 6), (1 - t_next) * x0_hat + math.sqrt(t_next) * pred_eps
                               + t * (pred_c + x0_hat))


@pytest.mark.parametrize("eta", [-0.1, 1.5])
def test_eta_outside_zero_one_is_refused(eta):
    with pytest.raises(ValueError, match=f"eta: {eta}; expected a value in \\[0, 1\\]"):
        RadioDiffScheduler(eta=eta)
    scheduler = RadioDiffScheduler()
    scheduler.set_timesteps(2)
    sample = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match=f"eta: {eta}"):
        scheduler.step(torch.cat([sample, sample], dim=1), scheduler.timesteps[0], sample, eta=eta)
