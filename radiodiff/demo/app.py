"""The Gradio app of ``radiodiff demo``: pick a city (a map of the run's test split, an uploaded building image or a
drawing), click to place the transmitter, and see each chosen model's radio map beside the physics baseline and, for
a map of the split at its own transmitter, the ground truth and the error.

Every handler is a plain function of :mod:`radiodiff.demo.functions`' results; the events name their API
(``/dataset_city``, ``/upload_city``, ``/drawn_city``, ``/render``) so that ``gradio_client`` drives the app as a
browser does.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .functions import (
    DatasetCity,
    DemoModel,
    city_from_image,
    city_image,
    colorize_error,
    colorize_gain,
    colour_bars,
    dataset_cities,
    display_scale,
    encoded_map,
    error_db,
    load_models,
    physics_baseline,
    place_transmitter,
    timed_run,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEMO_EXTRA = 'pip install -e ".[demo]"'


@dataclass
class Scene:
    """The city on screen: its buildings, and for a map of the split its true map and the transmitter it was
    simulated for."""

    buildings: np.ndarray
    note: str | None = None
    truth: np.ndarray | None = None
    truth_transmitter: tuple[int, int] | None = None


def import_gradio():
    """Gradio, or one line saying how to install it."""
    # a local demo reports nothing to Gradio's servers
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise ValueError(f"the demo needs Gradio, which is not installed: {DEMO_EXTRA}") from None
    return gradio


class DemoHandlers:
    """What the app's events do, for the loaded ``models`` and the split's ``cities``."""

    def __init__(self, models: list[DemoModel], cities: list[DatasetCity]):
        self.models = {model.label: model for model in models}
        self.cities = {city.name: city for city in cities}
        self.map_size = models[0].map_size
        self.downloads = Path(tempfile.mkdtemp(prefix="radiodiff-demo-"))

    def first_scene(self) -> tuple[Scene, int, int]:
        """The split's first map at its transmitter, or an empty city with the transmitter in its middle."""
        if self.cities:
            return self.dataset_city(next(iter(self.cities)))
        return Scene(np.zeros((self.map_size, self.map_size), np.float32)), self.map_size // 2, self.map_size // 2

    def dataset_city(self, name: str) -> tuple[Scene, int, int]:
        city = self.cities.get(name)
        if city is None:
            raise ValueError(f"city {name!r}: not a map of the split; expected one of the list")
        return Scene(city.buildings, None, city.truth, city.transmitter), *city.transmitter

    def image_city(self, image: np.ndarray | None, x: int, y: int) -> tuple[Scene, int, int]:
        if image is None:
            raise ValueError("no building image: upload one (buildings bright, streets dark)")
        buildings, note = city_from_image(image, self.map_size)
        return Scene(buildings, note), x, y

    def drawn_city(self, drawing: dict | None, x: int, y: int) -> tuple[Scene, int, int]:
        if drawing is None or drawing.get("composite") is None:
            raise ValueError("nothing drawn: draw buildings in white on the canvas")
        # the canvas is drawn at display size: its own resize is expected, not news to the user
        buildings, _ = city_from_image(Image.fromarray(drawing["composite"]).convert("L"), self.map_size)
        return Scene(buildings), x, y

    def clicked(self, scene: Scene, click_x: int, click_y: int) -> tuple[int, int]:
        """The map pixel under a click on the city's image (in the image's own pixels)."""
        scale = display_scale(scene.buildings.shape[0])
        return click_x // scale, click_y // scale

    def render(self, scene: Scene, x: int, y: int, chosen: Sequence[str], steps: int, seed: int):
        """The transmitter placed off the buildings, then every chosen model's map, the physics baseline and, at the
        split's transmitter, the truth and the errors. Returns the city image, the transmitter's (x, y), the
        gallery's (image, caption) pairs, the first model's map as an 8-bit PNG file, and the notes."""
        if not chosen:
            raise ValueError("no model chosen: tick at least one")
        unknown = [label for label in chosen if label not in self.models]
        if unknown:
            raise ValueError(f"model {unknown[0]!r}: not loaded; expected one of {', '.join(self.models)}")
        buildings = scene.buildings
        transmitter, moved = place_transmitter(buildings, x, y)
        notes = [note for note in (scene.note, moved) if note]
        maps, gallery = self.model_panels(chosen, buildings, transmitter, int(steps), int(seed))
        gallery.append((colorize_gain(physics_baseline(buildings, transmitter), buildings, transmitter),
                        "physics baseline (log-distance)"))
        if scene.truth is not None and transmitter == scene.truth_transmitter:
            gallery.extend(truth_panels(maps, scene.truth, buildings, transmitter))
        elif scene.truth is not None:
            notes.append("Ground truth exists for the map's own transmitter only: pick the city again to see it.")
        return (city_image(buildings, transmitter), *transmitter, gallery,
                self.write_download(maps[chosen[0]], buildings), "\n\n".join(f"**Note.** {note}" for note in notes))

    def model_panels(self, chosen: Sequence[str], buildings: np.ndarray, transmitter: tuple[int, int], steps: int,
                     seed: int) -> tuple[dict[str, np.ndarray], list[tuple[np.ndarray, str]]]:
        """Each chosen model's map, and its coloured image captioned with its sampling and time."""
        maps, panels = {}, []
        for label in chosen:
            model = self.models[label]
            maps[label], seconds = timed_run(model, buildings, transmitter, steps=steps, seed=seed)
            sampling = f"{steps} steps" if model.samples else "one pass"
            panels.append((colorize_gain(maps[label], buildings, transmitter),
                           f"{label} ({sampling}, {seconds * 1000:.0f} ms)"))
        return maps, panels

    def write_download(self, radio_map: np.ndarray, buildings: np.ndarray) -> str:
        """The map as ``radiodiff generate`` writes it, in a file of its own (sessions do not share one)."""
        with tempfile.NamedTemporaryFile(dir=self.downloads, prefix="radio-map-", suffix=".png",
                                         delete=False) as download:
            Image.fromarray(encoded_map(radio_map, buildings), mode="L").save(download, format="PNG")
        return download.name


def truth_panels(maps: dict[str, np.ndarray], truth: np.ndarray, buildings: np.ndarray,
                 transmitter: tuple[int, int]) -> list[tuple[np.ndarray, str]]:
    """The true map, then each model's |error| in dB captioned with its mean over the free pixels."""
    panels = [(colorize_gain(truth, buildings, transmitter), "ground truth")]
    for label, radio_map in maps.items():
        error = error_db(radio_map, truth)
        panels.append((colorize_error(error, buildings, transmitter),
                       f"|error| of {label} (mean {error[buildings < 0.5].mean():.1f} dB)"))
    return panels


def build_demo(models: list[DemoModel], cities: list[DatasetCity]):
    """The ``gr.Blocks`` app of ``models`` (compared on the same input when several) and the split's ``cities``."""
    gr = import_gradio()
    handlers = DemoHandlers(models, cities)
    # the first map of a process is slow (kernels chosen, caches filled): not the user's first click
    handlers.render(*handlers.first_scene(), list(handlers.models), 1, 0)
    labels = list(handlers.models)
    sampling = [model for model in models if model.samples]
    size = handlers.map_size
    with gr.Blocks(title="RadioDiff demo") as demo:
        gr.Markdown("# RadioDiff: radio maps from a city and a transmitter\n"
                    "Pick a city, **click on it to place the transmitter** (a click on a building moves it to the "
                    "nearest street), and compare the models' maps with the physics baseline.")
        first_scene, first_x, first_y = handlers.first_scene()
        scene = gr.State(first_scene)
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tabs():
                    with gr.Tab("Dataset city", visible=bool(cities)):
                        city_name = gr.Dropdown(list(handlers.cities), label="map of the test split (city_transmitter)",
                                                value=next(iter(handlers.cities), None))
                    with gr.Tab("Upload"):
                        upload = gr.Image(label=f"building image (buildings bright; resized to {size}x{size})",
                                          type="numpy", image_mode=None, sources=["upload", "clipboard"])
                    with gr.Tab("Draw"):
                        canvas = display_scale(size) * size
                        # with layers=False Gradio 6's canvas has no layer to draw on: strokes are lost
                        drawing = gr.ImageEditor(
                            value={"background": np.zeros((canvas, canvas, 3), np.uint8), "layers": [],
                                   "composite": None},
                            label="draw buildings in white", type="numpy", image_mode="RGB",
                            brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=max(2, canvas // 32)),
                            canvas_size=(canvas, canvas), fixed_canvas=True, transforms=[])
                        use_drawing = gr.Button("Use this drawing")
                city = gr.Image(label="city: click to place the transmitter", interactive=False, format="png",
                                elem_id="city")
                with gr.Row():
                    x = gr.Number(label="transmitter x (column)", precision=0, value=first_x, minimum=0,
                                  elem_id="transmitter-x")
                    y = gr.Number(label="transmitter y (row)", precision=0, value=first_y, minimum=0,
                                  elem_id="transmitter-y")
                chosen = gr.CheckboxGroup(labels, value=labels, label="models (compared on the same input)",
                                          visible=len(labels) > 1)
                steps = gr.Slider(1, 50, step=1, value=sampling[0].default_steps if sampling else 1,
                                  label="sampling steps", visible=bool(sampling))
                seed = gr.Number(label="seed", precision=0, value=0)
                run = gr.Button("Generate", variant="primary")
            with gr.Column(scale=2):
                maps = gr.Gallery(label="radio maps", columns=3, format="png", elem_id="maps", object_fit="contain")
                gr.Image(colour_bars(), label="colour scales", interactive=False, show_label=False, format="png")
                notes = gr.Markdown(elem_id="notes")
                download = gr.File(label="first model's map as an 8-bit PNG (RadioMapSeer encoding, buildings 0)")

        render_inputs = [scene, x, y, chosen, steps, seed]
        render_outputs = [city, x, y, maps, download, notes]

        def on_click(current: Scene, event: gr.SelectData) -> tuple[int, int]:
            return handlers.clicked(current, *event.index)

        def rerender(event):
            return event.then(handlers.render, render_inputs, render_outputs, api_visibility="undocumented")

        run.click(handlers.render, render_inputs, render_outputs, api_name="render")
        rerender(city_name.input(handlers.dataset_city, city_name, [scene, x, y], api_name="dataset_city"))
        rerender(upload.upload(handlers.image_city, [upload, x, y], [scene, x, y], api_name="upload_city"))
        rerender(use_drawing.click(handlers.drawn_city, [drawing, x, y], [scene, x, y], api_name="drawn_city"))
        rerender(city.select(on_click, scene, [x, y], api_visibility="undocumented"))
        demo.load(handlers.render, render_inputs, render_outputs, api_visibility="undocumented")
    return demo


def demo_from_folders(pipeline_dirs: Sequence[str | Path], *, labels: Sequence[str] | None = None,
                      config: str | None = None, split: str = "test"):
    """The app of saved pipeline folders; the cities are ``split`` of the first folder's run (``config`` or its
    ``config.yaml``). The folders load before Gradio is imported: a wrong folder fails at once."""
    models = load_models(pipeline_dirs, labels)
    cities = dataset_cities(pipeline_dirs[0], config, split, models[0].map_size)
    return build_demo(models, cities)


def run_demo(pipeline_dirs: Sequence[str], *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
             config: str | None = None, split: str = "test") -> None:
    """Serve the app on ``host:port`` until interrupted (loopback unless told otherwise)."""
    demo_from_folders(pipeline_dirs, config=config, split=split).launch(
        server_name=host, server_port=port, show_error=True)
