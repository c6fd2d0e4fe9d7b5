"""The README's training command prints only what concerns the user: its own lines, no launcher noise, no
library warnings on resume, one ``error:`` line and exit code 2 for a bad config, no traceback on Ctrl-C."""

import signal
import subprocess
import sys
import time
import warnings

from tests.helpers.tiny_runs import REPO, subprocess_env, tiny_training_overrides
from radiodiff.training import main_vae


def train_vae(*argv: str, **kwargs) -> subprocess.Popen:
    """``python train_vae.py ARGV``, as the README runs it."""
    return subprocess.Popen([sys.executable, str(REPO / "train_vae.py"), *argv], env=subprocess_env(), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_a_config_mistake_is_one_error_line_and_exit_code_2():
    process = train_vae("--config", "configs/quickstart.yaml", "train.max_step=10")
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2
    assert stderr.splitlines() == [
        stderr.splitlines()[0]
    ] and stderr.startswith("error: command-line override 'train.max_step=10': unknown key train.max_step; did you mean")


def test_ctrl_c_checkpoints_and_exits_without_a_traceback(tmp_path, synthetic_cache):
    output_dir = tmp_path / "run"
    overrides = tiny_training_overrides(output_dir, synthetic_cache) + ["train.max_steps=100000", "train.save_every=50"]
    process = train_vae(*overrides)
    deadline = time.monotonic() + 300
    while not list((output_dir / "logs").glob("*.log")) or "[Train Step]" not in next(
        (output_dir / "logs").glob("*.log")
    ).read_text():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert list((output_dir / "checkpoints").glob("checkpoint-*"))


def test_resume_prints_no_library_warnings(tmp_path, synthetic_cache, capfd):
    overrides = tiny_training_overrides(tmp_path / "run", synthetic_cache) + ["train.max_steps=4"]
    assert main_vae(overrides) == 0
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main_vae(overrides + ["train.max_steps=6", "--resume", "latest"]) == 0
    printed = capfd.readouterr()
    assert "Resumed from" in printed.out
    assert "config attributes" not in printed.err and "FutureWarning" not in printed.err
    assert [str(warning.message) for warning in caught if issubclass(warning.category, FutureWarning)] == []
