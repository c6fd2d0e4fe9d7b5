"""The demo in a real browser: headless Chromium opens the page, a click places the transmitter, the maps appear."""

import numpy as np

from radiodiff.demo.functions import dataset_cities

from .browser import click_transmitter
from .conftest import SIZE, chromium_path, require_module


def test_a_click_on_the_city_places_the_transmitter_and_the_maps_appear(served, runs, tmp_path):
    require_module("playwright")
    city = dataset_cities(runs["ldm"][0], None, "test", SIZE)[0]
    free = np.argwhere(city.buildings < 0.5)
    row, col = next((int(r), int(c)) for r, c in free[len(free) // 2 :] if (c, r) != city.transmitter)
    shown = click_transmitter(served.local_url, chromium_path(), SIZE, [(col, row)], tmp_path / "page.png")
    assert (shown["x"], shown["y"]) == (str(col), str(row))
    # both models' maps and the baseline
    assert len(shown["after"]) == 3 and shown["after"][0] != shown["before"][0]
    assert "Ground truth exists for the map's own transmitter only" in shown["notes"]
    assert (tmp_path / "page.png").stat().st_size > 10_000
