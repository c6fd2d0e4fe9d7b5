import math

import pytest

from radiodiff.config import TrainConfig
from radiodiff.training.schedule import ResumableShuffleSampler, learning_rate


def test_constant_schedule_with_linear_warmup():
    train = TrainConfig(lr_schedule="constant", warmup_steps=4, max_steps=100)
    assert [learning_rate(s, 1.0, train) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_cosine_decays_from_lr_to_min_lr():
    train = TrainConfig(lr_schedule="cosine", max_steps=100, min_lr=0.1)
    assert learning_rate(0, 1.0, train) == pytest.approx(1.0)
    assert learning_rate(50, 1.0, train) == pytest.approx(0.55)
    assert learning_rate(100, 1.0, train) == pytest.approx(0.1)


def test_poly_is_the_original_power_law_floored_at_min_lr():
    train = TrainConfig(lr_schedule="poly", max_steps=150000, lr=5e-6, min_lr=5e-7)
    assert learning_rate(75000, 5e-6, train) == pytest.approx(5e-6 * 0.5**0.95)
    assert learning_rate(149999, 5e-6, train) == pytest.approx(5e-7)
    assert math.isclose(learning_rate(0, 5e-6, train), 5e-6)


def test_shards_of_one_epoch_are_disjoint_and_cover_full_batches():
    shards = [list(ResumableShuffleSampler(23, batch_size=3, seed=7, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 9  # 23 // 2 = 11 maps each -> 3 full batches
    assert not set(shards[0]) & set(shards[1])


def test_every_epoch_has_a_new_order_and_the_same_order_for_the_same_seed():
    sampler = ResumableShuffleSampler(20, batch_size=4, seed=1)
    first = list(sampler)
    sampler.set_position(epoch=1, start_batch=0)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(20)) and first != second
    assert list(ResumableShuffleSampler(20, batch_size=4, seed=1)) == first


def test_starting_mid_epoch_continues_where_a_full_epoch_would_be():
    sampler = ResumableShuffleSampler(20, batch_size=4, seed=3)
    full = list(sampler)
    sampler.set_position(epoch=0, start_batch=2)
    assert list(sampler) == full[8:]


def test_too_little_data_for_one_batch_is_explained():
    with pytest.raises(ValueError, match="fewer than one batch of 8"):
        ResumableShuffleSampler(10, batch_size=8, seed=0, num_replicas=2)
