"""``train_vae.py`` under torchrun, except that rank 1 fails before step ``FAULT_STEP``.

``RADIODIFF_TEST_FAULT=kill``: rank 1 dies at once (SIGKILL), like an OOM kill or a lost node.
``RADIODIFF_TEST_FAULT=stall``: rank 1 stops taking part without dying (it sleeps), like a hung filesystem.
"""

import os
import signal
import sys
import time

from radiodiff.training import main_vae
from radiodiff.training.vae_trainer import VAETrainer as Trainer

FAULT = os.environ["RADIODIFF_TEST_FAULT"]
FAULT_STEP = 3  # after the checkpoint of step 2


def fail_on_rank_one(train_step):
    def faulty_train_step(self, batches):
        if self.accelerator.process_index == 1 and self.state.step == FAULT_STEP:
            if FAULT == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            # stalled, but still ended by the launcher's SIGTERM (the trainer would only note it as a stop request)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            time.sleep(600)
        return train_step(self, batches)

    return faulty_train_step


if __name__ == "__main__":
    Trainer.train_step = fail_on_rank_one(Trainer.train_step)
    sys.exit(main_vae(sys.argv[1:]))
