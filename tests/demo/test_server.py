"""The app served on a loopback port and driven through gradio_client, as a program (or a browser) drives it."""

import numpy as np
import torch
from PIL import Image

from radiodiff.demo.functions import dataset_cities

from .conftest import SIZE, require_module


def client_of(served):
    gradio_client = require_module("gradio_client")
    return gradio_client, gradio_client.Client(served.local_url, verbose=False)


def test_the_server_listens_on_loopback_with_the_demos_endpoints(served):
    _, client = client_of(served)
    assert served.local_url.startswith("http://127.0.0.1:")
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/render", "/dataset_city", "/upload_city", "/drawn_city"} <= set(endpoints)


def test_a_call_returns_the_pipelines_own_map_for_the_seed(served, runs):
    _, client = client_of(served)
    folder, pipe = runs["ldm"]
    city = dataset_cities(folder, None, "test", SIZE)[0]
    scene = client.predict(city.name, api_name="/dataset_city")
    assert tuple(scene) == city.transmitter
    _, x, y, gallery, download, notes = client.predict(*city.transmitter, ["ldm"], 3, 5, api_name="/render")
    assert (x, y) == city.transmitter and notes == ""
    assert [entry["caption"].split(" (")[0] for entry in gallery] == [
        "ldm", "physics baseline", "ground truth", "|error| of ldm"]
    expected = pipe(torch.from_numpy(city.buildings), city.transmitter, num_inference_steps=3,
                    generator=torch.Generator().manual_seed(5), output_type="pt").images[0, 0].numpy()
    encoded = np.where(city.buildings > 0.5, 0, np.rint(expected * 255)).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(download)), encoded)


def test_an_uploaded_colour_image_is_converted_with_a_note_and_the_transmitter_kept_off_its_buildings(served, tmp_path):
    gradio_client, client = client_of(served)
    picture = np.zeros((3 * SIZE, 3 * SIZE, 3), np.uint8)
    picture[:, : 3 * SIZE // 2] = (255, 255, 255)  # the left half is one building
    Image.fromarray(picture).save(tmp_path / "city.png")
    client.predict(gradio_client.handle_file(str(tmp_path / "city.png")), 2, 5, api_name="/upload_city")
    _, x, y, gallery, _, notes = client.predict(2, 5, ["ldm", "unet"], 2, 0, api_name="/render")
    assert (x, y) == (SIZE // 2, 5)
    assert "converted from RGB to grayscale and resized from 96x96 to the model's 32x32" in notes
    assert "moved to the nearest free pixel (x=16, y=5)" in notes
    assert [entry["caption"].split(" (")[0] for entry in gallery] == ["ldm", "unet", "physics baseline"]
