"""What the pipelines' tests share: two small cities (32x32)."""

import pytest
import torch

SIZE = 32


@pytest.fixture(scope="module")
def buildings() -> torch.Tensor:
    city = torch.zeros(2, 1, SIZE, SIZE)
    city[:, :, 4:12, 4:12] = 1.0
    city[1, :, 20:28, 16:30] = 1.0
    return city
