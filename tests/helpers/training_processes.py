"""Training runs in child processes that a test can ``kill -9``.

A child is forked from a multiprocessing fork server that imported torch and radiodiff once, so a run starts
in a fraction of a second instead of the ~10 s an import costs on a loaded CI machine; it runs the same
``main_vae`` as ``train_vae.py``. Each child uses one thread, like the subprocesses of the other tests, so the
weights of a killed-and-resumed run and an uninterrupted one can be compared bit for bit.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["radiodiff.training.trainer"])
# what a child writes once it is inside the held checkpoint write, so the test knows when to kill it
INSIDE_CHECKPOINT_WRITE = "inside-checkpoint-write"


def _hold_inside_checkpoint_write(step: int, marker: Path) -> None:
    """Make the checkpoint of ``step`` stop (forever) after its model files are written, before it is complete."""
    from accelerate import Accelerator

    save_state = Accelerator.save_state

    def held_save_state(self, output_dir=None, **kwargs):
        written = save_state(self, output_dir, **kwargs)
        if Path(output_dir).name == f".tmp-checkpoint-{step}":
            marker.write_text(str(output_dir))
            time.sleep(600)
        return written

    Accelerator.save_state = held_save_state


def _train(argv: list[str], stderr_path: str, hold_checkpoint_step: int | None) -> None:
    import torch

    torch.set_num_threads(1)
    os.dup2(os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
    if hold_checkpoint_step is not None:
        _hold_inside_checkpoint_write(hold_checkpoint_step, Path(stderr_path).with_name(INSIDE_CHECKPOINT_WRITE))
    from radiodiff.training import main_vae

    sys.exit(main_vae(argv))


class TrainingProcess:
    """``train_vae.py ARGV`` in a child process; its stderr goes to ``stderr_path`` (appended)."""

    def __init__(self, argv: list[str], stderr_path: Path, hold_checkpoint_step: int | None = None):
        self.stderr_path = stderr_path
        self.process = _CONTEXT.Process(target=_train, args=(argv, str(stderr_path), hold_checkpoint_step))
        self.process.start()

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def report(self) -> str:
        return f"exit code {self.process.exitcode}, stderr:\n{self.stderr()[-3000:]}"

    def wait(self, timeout: float = 300) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            raise AssertionError(f"the run did not end within {timeout} s:\n{self.stderr()[-3000:]}")
        return self.process.exitcode

    def process_signal(self, signum: int) -> None:
        """Send ``signum`` (SIGINT: Ctrl-C) to the running child."""
        if self.process.exitcode is not None:
            raise AssertionError(f"the run ended before the signal:\n{self.report()}")
        os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """``kill -9``; it is an error if the run had already ended (the kill would test nothing)."""
        if self.process.exitcode is not None:
            raise AssertionError(f"the run ended before the kill:\n{self.report()}")
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join()

    def wait_until(self, condition, what: str, timeout: float = 300) -> None:
        """Poll ``condition()`` while the run is alive."""
        deadline = time.monotonic() + timeout
        while not condition():
            if not self.process.is_alive():
                raise AssertionError(f"the run ended before {what}:\n{self.report()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"no {what} within {timeout} s")
            time.sleep(0.01)


def logged_step_lines(output_dir: Path, step: int) -> int:
    """How many times the run's text logs (all of them: each start appends) report ``step``."""
    logs = (Path(output_dir) / "logs").glob("*.log")
    return sum(log.read_text().count(f"[Train Step] {step}/") for log in logs)
