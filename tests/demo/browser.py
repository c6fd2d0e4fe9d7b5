"""A real browser on the demo's page: headless Chromium (the system's, driven by Playwright) clicks on the city to
place the transmitter, waits for the maps, and takes a screenshot.

``python -m tests.demo.browser PIPELINE_DIR... --screenshot docs/demo.png`` serves the given pipelines and
takes the README's screenshot: a click beside the first test map's transmitter, then one on it (its truth and errors
shown).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from radiodiff.demo.functions import display_scale

PAGE_TIMEOUT_MS = 30_000


def click_transmitter(url: str, chromium: str, map_size: int, pixels: list[tuple[int, int]], screenshot: Path) -> dict:
    """Open ``url``; for each map pixel (x, y) of ``pixels`` in turn, click on it in the city and wait until the
    page shows the transmitter there and the maps re-drawn; then save a screenshot. Returns what the page showed:
    the transmitter's fields, the maps' image sources before the first click and after the last, and the notes."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(url)
            city = page.locator("#city img").first
            city.wait_for()
            page.locator("#maps img").first.wait_for()
            first = maps = map_sources(page)
            for x, y in pixels:
                box = city.bounding_box()
                scale = display_scale(map_size) * box["width"] / city.evaluate("image => image.naturalWidth")
                city.click(position={"x": (x + 0.5) * scale, "y": (y + 0.5) * scale})
                page.wait_for_function(
                    "([x, y, before]) => document.querySelector('#transmitter-x input').value == x"
                    " && document.querySelector('#transmitter-y input').value == y"
                    " && document.querySelector('#maps img') !== null"
                    " && document.querySelector('#maps img').src !== before",
                    arg=[str(x), str(y), maps[0]])
                page.wait_for_function("() => [...document.querySelectorAll('#maps img')]"
                                       ".every(image => image.complete && image.naturalWidth > 0)")
                maps = map_sources(page)
            page.screenshot(path=str(screenshot), full_page=True)
            return {
                "x": page.locator("#transmitter-x input").input_value(),
                "y": page.locator("#transmitter-y input").input_value(),
                "before": first,
                "after": maps,
                "notes": page.locator("#notes").inner_text(),
            }
        finally:
            browser.close()


def map_sources(page) -> list[str]:
    return page.locator("#maps img").evaluate_all("images => images.map(image => image.src)")


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
        # away from the map's own transmitter and back: the truth and the errors appear again
        away = (city.transmitter[0] + 1, city.transmitter[1])
        shown = click_transmitter(demo.local_url, shutil.which("chromium"), map_size, [away, city.transmitter],
                                  args.screenshot)
    finally:
        demo.close()
    print(f"wrote {args.screenshot}: transmitter ({shown['x']}, {shown['y']}), {len(shown['after'])} maps")


if __name__ == "__main__":
    main()
