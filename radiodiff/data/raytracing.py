"""Ray-traced gain maps with Sionna RT, for the synthetic cities of :mod:`radiodiff.data.synthetic`.

A city's building raster is traced into footprint outlines, straightened and extruded into walls (RadioMapSeer's
25 m by default) standing on a ground plane, both with ITU-R P.2040 materials; Sionna's radio-map solver then shoots rays from each transmitter with line of
sight and specular reflections (walls and ground), and the path gain lands in RadioMapSeer's encoding
(:func:`~radiodiff.data.propagation.encode_gain`) under ``gain/SionnaRT/``. Sionna 2.2's first-order diffraction
is left off: it adds nothing to a mesh measurement surface such as the one below (docs/raytracing.md).

Receivers stand at the transmitter's height (1.5 m both, as RadioMapSeer), which Sionna's horizontal measurement
plane cannot see: it counts the rays that cross it, and a ray leaving a transmitter that stands on the plane never
crosses it in line of sight. Each street pixel is therefore measured by a vertical rectangle (the pixel's width,
2.8 m tall around the receiver height) turned to face the transmitter: line-of-sight rays cross it head-on and the
solver's cell average over it is the gain at the pixel, within Monte-Carlo noise. Roofs are left out: a ray from
1.5 m never reaches one from above.

Sionna, Mitsuba and Dr.Jit are imported only when a map is traced (``pip install -e ".[sionna]"``); on a CPU they
run on Dr.Jit's LLVM backend, which needs an LLVM shared library (Debian's ``libllvm19``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .city import CITY_SIDE_M, meters_per_pixel
from .propagation import GAIN_CEILING_DB

SIMULATION = "SionnaRT"
MITSUBA_VARIANT = "llvm_ad_mono_polarized"
# how far a receiver rectangle reaches above and below the receiver height (less near the ground): the gain hardly
# changes over it away from the transmitter, and a taller rectangle catches more rays, so its average is less noisy
_RECEIVER_HALF_HEIGHT_M = 1.4
# how far (pixels) a straightened wall may stray from the raster's pixel edges
_WALL_TOLERANCE_PX = 1.5


class RaytracingError(ValueError):
    """Sionna could not be started, a scene did not build or the solver failed (one line, for the CLI)."""


@dataclass(frozen=True)
class RaytracingSettings:
    """What the ray tracer simulates. Defaults: RadioMapSeer's heights and frequency (docs/raytracing.md)."""

    frequency_hz: float = 5.9e9
    tx_height_m: float = 1.5
    rx_height_m: float = 1.5
    # every building's height is drawn uniformly from this range (one draw per connected footprint)
    building_height_m: tuple[float, float] = (25.0, 25.0)
    max_depth: int = 3
    samples_per_tx: int = 2_000_000
    building_material: str = "concrete"
    ground_material: str = "medium_dry_ground"

    def __post_init__(self) -> None:
        low, high = self.building_height_m
        if not 0 < low <= high:
            raise ValueError(f"building height {self.building_height_m}: expected 0 < min <= max metres")
        if self.rx_height_m < 0.2 or self.tx_height_m <= 0:
            raise ValueError(
                f"heights tx {self.tx_height_m} m, rx {self.rx_height_m} m: expected a transmitter above the ground "
                "and receivers at least 0.2 m up"
            )
        if self.max_depth < 0 or self.samples_per_tx < 1 or self.frequency_hz <= 0:
            raise ValueError(
                f"max depth {self.max_depth}, rays {self.samples_per_tx}, frequency {self.frequency_hz} Hz: expected "
                "a depth >= 0, at least one ray and a positive frequency"
            )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "building_height_m": list(self.building_height_m)}


def building_heights(buildings: np.ndarray, height_range_m: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Each building pixel's height in metres (0 in free space): one uniform draw per connected footprint."""
    footprints, count = ndimage.label(buildings)
    low, high = height_range_m
    per_footprint = np.concatenate([[0.0], rng.uniform(low, high, count) if high > low else np.full(count, low)])
    return per_footprint[footprints]


def _pixel_corner_xy(rows: np.ndarray, cols: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Metres east and north of the city's centre of the grid corner (row, col); row 0 is the northern edge."""
    step = meters_per_pixel(size)
    return cols * step - CITY_SIDE_M / 2, CITY_SIDE_M / 2 - rows * step


def pixel_centre_xy(pixels: np.ndarray, size: int) -> np.ndarray:
    """(N, 2) metres east and north of the centres of the (N, 2) (row, col) ``pixels``: the fast engine's frame."""
    east, north = _pixel_corner_xy(pixels[:, 0] + 0.5, pixels[:, 1] + 0.5, size)
    return np.stack([east, north], axis=1)


def _simplified(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: the vertices of the polyline ``points`` (N, 2) that keep it within ``tolerance``."""
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    spans = [(0, len(points) - 1)]
    while spans:
        first, last = spans.pop()
        if last - first < 2:
            continue
        chord = points[last] - points[first]
        offsets = points[first + 1 : last] - points[first]
        length = np.hypot(*chord)
        # a closed ring starts and ends on the same point: there the distance to that point decides
        distance = (np.abs(chord[0] * offsets[:, 1] - chord[1] * offsets[:, 0]) / length if length > 0
                    else np.hypot(offsets[:, 0], offsets[:, 1]))
        farthest = int(distance.argmax())
        if distance[farthest] > tolerance:
            middle = first + 1 + farthest
            keep[middle] = True
            spans += [(first, middle), (middle, last)]
    return points[keep]


def footprint_outlines(buildings: np.ndarray) -> list[np.ndarray]:
    """The closed outline (K, 2) of every footprint and courtyard, in grid-corner (row, col) coordinates, traced
    along the pixel edges and straightened to within a pixel: a street at an angle gets a straight wall, not the
    raster's staircase, whose little axis-aligned mirrors would scatter reflections into streaks."""
    import contourpy  # matplotlib's contour tracer

    padded = np.pad(buildings.astype(np.float64), 1)
    outlines = []
    for line in contourpy.contour_generator(z=padded, line_type="Separate").lines(0.5):
        staircase = _pixel_edges(line[:, ::-1] - 0.5)
        outline = _simplified(staircase, _WALL_TOLERANCE_PX)
        # a footprint of a pixel or two would straighten into a line: it keeps its staircase
        outlines.append(outline if len(outline) >= 4 else staircase)
    return outlines


def _pixel_edges(ring: np.ndarray) -> np.ndarray:
    """A marching-squares ring (it runs through the middles of pixel edges, cutting each corner at 45 degrees)
    with the cut corners put back: the footprint's exact staircase outline."""
    before, after = ring[:-1], ring[1:]
    cut = (before != after).all(axis=1)
    # of the two corners a cut could skip, the pixel corner is the one with both coordinates whole
    row_whole = np.isclose(before[:, 0], np.round(before[:, 0]))
    corner = np.where(row_whole[:, None], np.stack([before[:, 0], after[:, 1]], axis=1),
                      np.stack([after[:, 0], before[:, 1]], axis=1))
    staircase = np.insert(ring, np.flatnonzero(cut) + 1, corner[cut], axis=0)[:-1]
    # start (and end) at the northernmost, then westernmost point: a corner of the footprint, so that the ring's
    # seam is a vertex of the straightened outline too
    first = np.lexsort((staircase[:, 1], staircase[:, 0]))[0]
    staircase = np.roll(staircase, -first, axis=0)
    return np.concatenate([staircase, staircase[:1]])


def wall_mesh(heights_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangles (F, 3) of the walls along the footprint outlines of ``heights_m`` (metres per
    pixel, 0 = free): one quad per straight wall, neighbouring walls sharing their corner vertices, so that Sionna
    finds the building corners as wedges. Normals point into free space."""
    size = heights_m.shape[0]
    buildings = heights_m > 0
    # a wall's height is read just inside it; a pixel's neighbourhood covers the straightening's shift
    nearby_height = ndimage.maximum_filter(heights_m, size=3)
    quads, outward = [], []
    for outline in footprint_outlines(buildings):
        start, end = outline[:-1], outline[1:]
        along = end - start
        normal = np.stack([-along[:, 1], along[:, 0]], axis=1) / np.hypot(along[:, 0], along[:, 1])[:, None]
        middle = (start + end) / 2
        normal_side = _pixel_at(middle + 0.7 * normal, size)
        normal = np.where(buildings[normal_side][:, None], -normal, normal)
        height = nearby_height[_pixel_at(middle - 0.7 * normal, size)]
        corners = []
        for point, z in ((start, 0.0), (end, 0.0), (end, height), (start, height)):
            east, north = _pixel_corner_xy(point[:, 0], point[:, 1], size)
            corners.append(np.stack([east, north, np.broadcast_to(z, east.shape)], axis=1))
        quads.append(np.stack(corners, axis=1))
        # (row, col) -> (east, north): rows grow southward
        outward.append(np.stack([normal[:, 1], -normal[:, 0], np.zeros(len(normal))], axis=1))
    return _triangulate(np.concatenate(quads), np.concatenate(outward), share_vertices=True)


def _pixel_at(points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    index = np.clip(np.floor(points).astype(int), 0, size - 1)
    return index[:, 0], index[:, 1]


def _triangulate(quads: np.ndarray, outward: np.ndarray, share_vertices: bool) -> tuple[np.ndarray, np.ndarray]:
    """(Q, 4, 3) planar quads -> vertices and two triangles each, wound so that their normals follow ``outward``."""
    normal = np.cross(quads[:, 1] - quads[:, 0], quads[:, 2] - quads[:, 0])
    flip = np.einsum("qk,qk->q", normal, outward) < 0
    quads = np.where(flip[:, None, None], quads[:, ::-1], quads)
    corners = np.arange(len(quads) * 4).reshape(-1, 4)
    # a quad's two triangles side by side, so that triangle 2q and 2q + 1 are quad q
    faces = np.stack([corners[:, [0, 1, 2]], corners[:, [0, 2, 3]]], axis=1).reshape(-1, 3)
    vertices = quads.reshape(-1, 3)
    if share_vertices:
        vertices, index = np.unique(np.round(vertices, 6), axis=0, return_inverse=True)
        faces = index.reshape(-1)[faces]
    return vertices, faces


def ground_mesh() -> tuple[np.ndarray, np.ndarray]:
    half = CITY_SIDE_M / 2
    quad = np.array([[[-half, -half, 0], [half, -half, 0], [half, half, 0], [-half, half, 0]]], dtype=np.float64)
    return _triangulate(quad, np.array([[0.0, 0.0, 1.0]]), share_vertices=False)


def receiver_rectangles(
    buildings: np.ndarray, transmitter: tuple[int, int], rx_height_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The measurement surface for one transmitter: a vertical rectangle per street pixel (the pixel's width, 2.8 m
    tall around the receiver height), facing the transmitter.

    Returns vertices, triangles (two per rectangle) and the (N, 2) pixels they stand for, in triangle order.
    """
    size = buildings.shape[0]
    measured = ~buildings
    measured[transmitter] = False
    pixels = np.argwhere(measured)
    centres = pixel_centre_xy(pixels, size)
    radial = centres - pixel_centre_xy(np.array([transmitter]), size)
    radial /= np.linalg.norm(radial, axis=1, keepdims=True)
    half_width = np.stack([-radial[:, 1], radial[:, 0]], axis=1) * (meters_per_pixel(size) / 2)
    half_height = min(_RECEIVER_HALF_HEIGHT_M, rx_height_m - 0.1)
    low, high = rx_height_m - half_height, rx_height_m + half_height
    corners = [(centres + side * half_width, z) for side, z in ((-1, low), (1, low), (1, high), (-1, high))]
    quads = np.stack([np.concatenate([xy, np.full((len(xy), 1), z)], axis=1) for xy, z in corners], axis=1)
    outward = np.concatenate([-radial, np.zeros((len(radial), 1))], axis=1)
    vertices, faces = _triangulate(quads, outward, share_vertices=False)
    return vertices, faces, pixels


def import_sionna(threads: int | None = None):
    """``(drjit, mitsuba, sionna.rt)`` on the LLVM (CPU) variant, or one :class:`RaytracingError` line saying what
    to install. ``threads`` caps Dr.Jit's worker threads (None: Dr.Jit's default, every core)."""
    try:
        import drjit
        import mitsuba
    except ImportError as error:
        raise RaytracingError(f'the sionna engine needs Sionna RT: pip install -e ".[sionna]" ({error})') from None
    try:
        if mitsuba.variant() != MITSUBA_VARIANT:
            mitsuba.set_variant(MITSUBA_VARIANT)
        import sionna.rt
    except ImportError as error:
        reason = " ".join(str(error).split())
        raise RaytracingError(
            "Dr.Jit's LLVM backend did not start: install the LLVM shared library (Debian/Ubuntu: apt-get install "
            f"libllvm19) or set DRJIT_LIBLLVM_PATH to its libLLVM.so ({reason})"
        ) from None
    if threads is not None:
        drjit.set_thread_count(threads)
    return drjit, mitsuba, sionna.rt


class CityRaytracer:
    """One city's Sionna scene, built once and traced for each of its transmitters."""

    def __init__(self, heights_m: np.ndarray, settings: RaytracingSettings, threads: int | None = None) -> None:
        _, self._mi, self._rt = import_sionna(threads)
        self.buildings = heights_m > 0
        self.settings = settings
        rt = self._rt
        try:
            scene = rt.load_scene()
            scene.frequency = settings.frequency_hz
            scene.tx_array = rt.PlanarArray(num_rows=1, num_cols=1, pattern="iso", polarization="V")
            objects = [self._object("ground", *ground_mesh(), settings.ground_material)]
            if self.buildings.any():
                objects.append(self._object("buildings", *wall_mesh(heights_m), settings.building_material))
            scene.edit(add=objects)
        except Exception as error:  # Sionna and Mitsuba raise many types; the user needs one line either way
            raise RaytracingError(f"the Sionna scene did not build: {' '.join(str(error).split())}") from None
        self.scene = scene

    def _mesh(self, name: str, vertices: np.ndarray, faces: np.ndarray):
        mi = self._mi
        mesh = mi.Mesh(name, vertex_count=len(vertices), face_count=len(faces), has_vertex_normals=False,
                       has_vertex_texcoords=False)
        params = mi.traverse(mesh)
        params["vertex_positions"] = mi.Float(vertices.astype(np.float32).ravel())
        params["faces"] = mi.UInt32(faces.astype(np.uint32).ravel())
        params.update()
        return mesh

    def _object(self, name: str, vertices: np.ndarray, faces: np.ndarray, material: str):
        radio_material = self._rt.ITURadioMaterial(f"{name}-{material}", material, thickness=0.3)
        return self._rt.SceneObject(mi_mesh=self._mesh(name, vertices, faces), name=name,
                                    radio_material=radio_material)

    def gain_db(self, transmitter: tuple[int, int], seed: int) -> np.ndarray:
        """Path gain (dB) from the transmitter pixel (row, col) to every pixel: -inf in buildings and where no
        ray arrives; the transmitter's own pixel gets the gain at 1 m, as in the fast engine."""
        rt, mi, settings = self._rt, self._mi, self.settings
        size = self.buildings.shape[0]
        east, north = pixel_centre_xy(np.array([transmitter]), size)[0]
        vertices, faces, pixels = receiver_rectangles(self.buildings, transmitter, settings.rx_height_m)
        try:
            self.scene.add(rt.Transmitter("tx", position=mi.Point3f(float(east), float(north), settings.tx_height_m)))
            radio_map = rt.RadioMapSolver()(
                self.scene, measurement_surface=self._mesh("receivers", vertices, faces),
                samples_per_tx=settings.samples_per_tx, max_depth=settings.max_depth, los=True,
                specular_reflection=True, diffuse_reflection=False, refraction=False,
                seed=seed,
            )
            # the two triangles of a rectangle are equal halves: their mean is the rectangle's mean
            path_gain = radio_map.path_gain.numpy()[0].reshape(-1, 2).mean(axis=1)
        except Exception as error:  # as above: one line naming what failed
            raise RaytracingError(f"Sionna's radio-map solver failed: {' '.join(str(error).split())}") from None
        finally:
            if self.scene.get("tx") is not None:
                self.scene.remove("tx")
        gain = np.full(self.buildings.shape, -np.inf)
        with np.errstate(divide="ignore"):
            gain[pixels[:, 0], pixels[:, 1]] = 10 * np.log10(path_gain)
        gain[transmitter] = GAIN_CEILING_DB
        return gain
