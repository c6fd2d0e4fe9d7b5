"""A real browser on the demo's page: headless Chromium (the system's, driven by Playwright) clicks on the city to
place the transmitter, or draws a city, and waits for the maps.

``python -m tests.demo.browser PIPELINE_DIR... --screenshot docs/demo.png`` serves the given pipelines and
takes the README's screenshot: a click beside the first test map's transmitter, then one on it (its truth and errors
shown).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from radiodiff.demo.functions import BUILDING_RGB, display_scale

PAGE_TIMEOUT_MS = 30_000


@contextlib.contextmanager
def open_page(url: str, chromium: str) -> Iterator:
    """The demo's page in headless Chromium, once its first maps are shown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(url)
            page.locator("#city img").first.wait_for()
            page.locator("#maps img").first.wait_for()
            yield page
        finally:
            browser.close()


def map_sources(page) -> list[str]:
    return page.locator("#maps img").evaluate_all("images => images.map(image => image.src)")


def wait_for_new_maps(page, before: list[str]) -> list[str]:
    """Wait until the first map is another image than ``before``'s and every map has loaded; their sources."""
    page.wait_for_function("before => document.querySelector('#maps img') !== null"
                           " && document.querySelector('#maps img').src !== before", arg=before[0])
    page.wait_for_function("() => [...document.querySelectorAll('#maps img')]"
                           ".every(image => image.complete && image.naturalWidth > 0)")
    return map_sources(page)


def click_city(page, map_size: int, pixel: tuple[int, int]) -> list[str]:
    """Click on map pixel ``pixel`` (x, y) of the city; wait until the transmitter's fields say so and the maps are
    new. Returns the maps' sources."""
    before = map_sources(page)
    city = page.locator("#city img").first
    box = city.bounding_box()
    scale = display_scale(map_size) * box["width"] / city.evaluate("image => image.naturalWidth")
    city.click(position={"x": (pixel[0] + 0.5) * scale, "y": (pixel[1] + 0.5) * scale})
    page.wait_for_function("([x, y]) => document.querySelector('#transmitter-x input').value == x"
                           " && document.querySelector('#transmitter-y input').value == y",
                           arg=[str(pixel[0]), str(pixel[1])])
    return wait_for_new_maps(page, before)


def draw_stroke(page) -> list[str]:
    """On the Draw tab, one diagonal brush stroke across the canvas's middle, then *Use this drawing*; waits for the
    new maps and returns their sources."""
    before = map_sources(page)
    page.get_by_role("tab", name="Draw").click()
    page.get_by_role("button", name="Brush", exact=True).click()
    box = page.locator("canvas").first.bounding_box()
    middle_x, middle_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(middle_x - 60, middle_y - 30)
    page.mouse.down()
    # few pointer events: each one redraws the canvas, a few hundred milliseconds in headless Chromium
    for step in range(1, 5):
        page.mouse.move(middle_x - 60 + 30 * step, middle_y - 30 + 15 * step)
    page.mouse.up()
    page.get_by_role("button", name="Use this drawing").click()
    return wait_for_new_maps(page, before)


def building_pixels(page) -> int:
    """How many pixels of the city's image are building grey."""
    return page.locator("#city img").first.evaluate(
        """(image, grey) => {
            const canvas = document.createElement('canvas');
            canvas.width = image.naturalWidth;
            canvas.height = image.naturalHeight;
            const context = canvas.getContext('2d');
            context.drawImage(image, 0, 0);
            const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < pixels.length; i += 4) {
                if (pixels[i] === grey[0] && pixels[i + 1] === grey[1] && pixels[i + 2] === grey[2]) count++;
            }
            return count;
        }""", list(BUILDING_RGB))


def free_pixel_beside(buildings: np.ndarray, pixel: tuple[int, int]) -> tuple[int, int]:
    """The free pixel (x, y) nearest to ``pixel`` other than itself."""
    rows, cols = np.nonzero(buildings < 0.5)
    distance = (cols - pixel[0]) ** 2 + (rows - pixel[1]) ** 2
    distance[distance == 0] = distance.max() + 1
    nearest = int(np.argmin(distance))
    return int(cols[nearest]), int(rows[nearest])


def main() -> None:
    import shutil

    from radiodiff.demo import demo_from_folders
    from radiodiff.demo.functions import dataset_cities, load_models
    from tests.demo.conftest import free_port

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pipelines", nargs="+")
    parser.add_argument("--screenshot", type=Path, required=True)
    args = parser.parse_args()
    map_size = load_models(args.pipelines[:1])[0].map_size
    city = dataset_cities(args.pipelines[0], None, "test", map_size)[0]
    demo = demo_from_folders(args.pipelines)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with open_page(demo.local_url, shutil.which("chromium")) as page:
            # away from the map's own transmitter and back: the truth and the errors appear again
            click_city(page, map_size, free_pixel_beside(city.buildings, city.transmitter))
            maps = click_city(page, map_size, city.transmitter)
            page.screenshot(path=str(args.screenshot), full_page=True)
    finally:
        demo.close()
    print(f"wrote {args.screenshot}: transmitter {city.transmitter}, {len(maps)} maps")


if __name__ == "__main__":
    main()
