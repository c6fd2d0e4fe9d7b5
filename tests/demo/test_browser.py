"""The demo in a real browser: headless Chromium opens the page, a click places the transmitter, a drawing becomes
the city, and the maps appear."""

import pytest

from radiodiff.demo.functions import dataset_cities

from .browser import building_pixels, click_city, draw_stroke, free_pixel_beside, map_sources, open_page
from .conftest import SIZE, chromium_path, require_module


@pytest.fixture
def page(served):
    require_module("playwright")
    with open_page(served.local_url, chromium_path()) as page:
        yield page


def test_a_click_on_the_city_places_the_transmitter_and_the_maps_appear(page, runs, tmp_path):
    city = dataset_cities(runs["ldm"][0], None, "test", SIZE)[0]
    # the page opens on the split's first map at its transmitter: two models, the baseline, the truth, two errors
    assert len(map_sources(page)) == 6
    maps = click_city(page, SIZE, free_pixel_beside(city.buildings, city.transmitter))
    assert len(maps) == 3  # both models and the baseline: the truth is for the map's own transmitter only
    assert "Ground truth exists for the map's own transmitter only" in page.locator("#notes").inner_text()
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_buildings_drawn_on_the_canvas_become_the_city(page):
    dataset_buildings = building_pixels(page)
    maps = draw_stroke(page)
    drawn_buildings = building_pixels(page)
    assert len(maps) == 3
    assert drawn_buildings > 0 and drawn_buildings != dataset_buildings
