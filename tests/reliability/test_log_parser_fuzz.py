"""Fuzzing the training-log parser: whatever a log holds, ``parse_log`` reads it and counts what it cannot use.

Its documented behaviour: unreadable lines are counted in ``counts``, never raised; only a missing file raises
(FileNotFoundError).
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radiodiff.report.parse import parse_log

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
STAMP = "2026-11-24 07:12:03,123 "

# plain step counts, other Unicode digits, more digits than int64 holds, and more than Python converts (4300)
digits = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.text(alphabet="0123456789٣²", min_size=1, max_size=30),
    st.just("9" * 5000),
)
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=12), digits)
keys = st.one_of(st.sampled_from(["train/total_loss", "train/rec_loss", "train/disc_loss", "lr"]), st.text(max_size=10))
step_lines = st.builds(
    lambda step, total, fields, end: f"{STAMP}[Train Step] {step}/{total}: {fields}{end}",
    digits, digits,
    st.lists(st.tuples(keys, values), max_size=5).map(lambda kv: "".join(f"{k}: {v}, " for k, v in kv)),
    st.sampled_from(["", ", ", "skipped step: non-finite loss", "\r"]),
)
config_lines = st.one_of(
    st.just(f'{STAMP}{{"train": {{"max_steps": 8, "lr": 1e-3}}, "loss": {{"disc_start": 5}}}}'),
    st.text(max_size=40).map(lambda text: f"{STAMP}{{{text}"),
    st.sampled_from([f"{STAMP}{'[' * 5000}", f"{STAMP}{{'a': {'(' * 300}", f"{STAMP}{{'trainer': {{'lr': 'x'}}}}"]),
)
lines = st.one_of(step_lines, config_lines, st.text(max_size=60))


def assert_parses(path):
    log = parse_log(path)
    assert len(log.steps) == len(log.timestamps) == len(log.total_steps)
    assert all(len(column) == len(log.steps) for column in log.columns.values())


@FUZZ
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_parse_without_error(tmp_path, data):
    path = tmp_path / "run_.log"
    path.write_bytes(data)
    assert_parses(path)


@FUZZ
@given(log_lines=st.lists(lines, max_size=12))
def test_arbitrary_lines_in_the_log_format_parse_without_error(tmp_path, log_lines):
    path = tmp_path / "run_.log"
    path.write_text("\n".join(log_lines), encoding="utf-8", errors="surrogatepass")
    assert_parses(path)


def test_a_missing_log_is_the_only_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="training log not found"):
        parse_log(tmp_path / "missing.log")
