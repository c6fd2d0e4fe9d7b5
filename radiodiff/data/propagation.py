"""A dominant-path stand-in: the path gain of one transmitter over a city, in dB.

The strongest path to a receiver is the shortest way through free space (around the buildings, down the street
canyons). Its length sets a log-distance loss; the detour it makes over the straight line sets a knife-edge
diffraction loss, which is zero in line of sight, grows smoothly past a shadow boundary and keeps growing with
every corner the path turns. Buildings let nothing through (the shortest path never enters them).

- line of sight: rays cast from the transmitter on a polar grid; a pixel is lit if its ray meets no building first;
- geodesic distance: Dijkstra on a 16-connected grid (at most 128 x 128 nodes), the detour measured against the
  same grid metric in free space so that the grid's anisotropy cancels, then averaged over ~1.5 m in the shadow;
- loss: ``10 n log10(d / 1 m)`` (n = 2.5) below the gain at 1 m, which is RadioMapSeer's maximum, plus ITU-R
  P.526's knife-edge ``J(v) - J(0)`` with ``v = sqrt(2 detour / lambda)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .city import meters_per_pixel

# RadioMapSeer's encoding: gain in dB mapped linearly onto 0..255; -47.84 dB is the free-space gain at 1 m at
# 5.9 GHz, -147 dB the truncation floor (everything weaker, and every building pixel, is 0)
GAIN_FLOOR_DB = -147.0
GAIN_CEILING_DB = -47.84
# 16-connected moves (one per direction pair): straight, diagonal and knight moves, each with the cells a knight
# move brushes past (it may not cut a wall's corner); the grid metric is then within 3 % of the Euclidean one
_MOVES = (
    ((0, 1), ()),
    ((1, 0), ()),
    ((1, 1), ()),
    ((1, -1), ()),
    ((1, 2), ((0, 1), (1, 1))),
    ((2, 1), ((1, 0), (1, 1))),
    ((2, -1), ((1, 0), (1, -1))),
    ((1, -2), ((0, -1), (1, -1))),
)
_MAX_GRAPH_SIDE = 128


@dataclass(frozen=True)
class PropagationModel:
    """The constants of the model; the defaults are fitted to Sionna RT's maps of the same cities (docs/raytracing.md).

    Generator version 1 used ``exponent=2.5, diffraction_wavelength_m=0.25`` (fitted to the line-of-sight decay of
    RadioMapSeer's DPM maps); against the ray tracer they were 12.4 dB too dark (RMSE 14.6 dB), these 0.1 dB (7.2 dB).
    """

    # log-distance exponent: free space's 2 (the ray tracer's line of sight decays at about 1.9: free space plus the
    # ground's and walls' reflections, added in power)
    exponent: float = 2.0
    # the knife-edge wavelength: larger than the 5 cm of 5.9 GHz because the shadow is lit by many edges and
    # reflections, which a single sharp edge's loss overstates; 1 m fits the ray tracer's shadowed streets best
    diffraction_wavelength_m: float = 1.0
    # the detour is averaged over about this distance (a Fresnel zone's width at ~50 m), so that shadow edges
    # fade over a few metres as diffraction makes them do, instead of following the grid's steps
    edge_softening_m: float = 1.5


@dataclass
class City:
    """One city prepared for propagation, built once and reused for each of its transmitters."""

    buildings: np.ndarray  # (size, size) bool, True = building
    padded_buildings: np.ndarray  # flattened, with a free margin wide enough for every ray to stay inside
    graph: csr_matrix  # the 16-connected graph of free coarse cells
    free: np.ndarray  # the coarse free-space mask
    step: int  # pixels per coarse cell
    nearest_free: tuple[np.ndarray, np.ndarray]  # for every coarse cell, the (row, col) of the nearest free one

    @property
    def size(self) -> int:
        return self.buildings.shape[0]


def _grid_step(size: int) -> int:
    return max(1, -(-size // _MAX_GRAPH_SIDE))


def _shifted(array: np.ndarray, d_row: int, d_col: int) -> np.ndarray:
    """``array`` seen from each cell at offset (d_row, d_col), over the cells for which every move stays inside."""
    rows, cols = array.shape
    return array[2 + d_row : rows - 2 + d_row, 2 + d_col : cols - 2 + d_col]


def _free_space_graph(free: np.ndarray) -> csr_matrix:
    """The 16-connected graph of the free cells of ``free``."""
    # a wall-padded copy, so that every move from every cell stays inside the array
    padded_free = np.pad(free, 2, constant_values=False)
    node = np.pad(np.arange(free.size).reshape(free.shape), 2, constant_values=-1)
    sources, targets, weights = [], [], []
    for (d_row, d_col), brushed in _MOVES:
        passable = _shifted(padded_free, 0, 0) & _shifted(padded_free, d_row, d_col)
        for b_row, b_col in brushed:
            passable &= _shifted(padded_free, b_row, b_col)
        sources.append(_shifted(node, 0, 0)[passable])
        targets.append(_shifted(node, d_row, d_col)[passable])
        weights.append(np.full(int(passable.sum()), np.hypot(d_row, d_col)))
    return csr_matrix(
        (np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))), shape=(free.size, free.size)
    )


def prepare_city(buildings: np.ndarray) -> City:
    """The per-city grids: padded buildings for ray casting, and a coarse graph (a cell is free if its centre is)."""
    size = buildings.shape[0]
    step = _grid_step(size)
    free = ~buildings[step // 2 :: step, step // 2 :: step]
    _, nearest_free = ndimage.distance_transform_edt(~free, return_indices=True)
    return City(
        buildings=buildings,
        padded_buildings=_padded_for_rays(buildings),
        graph=_free_space_graph(free),
        free=free,
        step=step,
        nearest_free=(nearest_free[0], nearest_free[1]),
    )


def _grid_metric(d_row: np.ndarray, d_col: np.ndarray) -> np.ndarray:
    """The length of the shortest 16-connected path between two cells in open space."""
    major = np.maximum(np.abs(d_row), np.abs(d_col))
    minor = np.minimum(np.abs(d_row), np.abs(d_col))
    knight_and_straight = np.sqrt(5) * minor + (major - 2 * minor)
    knight_and_diagonal = np.sqrt(5) * (major - minor) + np.sqrt(2) * (2 * minor - major)
    return np.where(2 * minor <= major, knight_and_straight, knight_and_diagonal)


def _window(table: np.ndarray, size: int, origin: tuple[int, int]) -> np.ndarray:
    """The ``size`` x ``size`` view of an offset table (centred on offset 0) seen from pixel ``origin``."""
    return table[size - 1 - origin[0] : 2 * size - 1 - origin[0], size - 1 - origin[1] : 2 * size - 1 - origin[1]]


@dataclass(frozen=True)
class _RayTables:
    """Everything about casting rays on a ``size`` grid that does not depend on where the transmitter is."""

    margin: int
    angles: int
    ray_offsets: np.ndarray  # (angles, radii) flat offsets into the padded buildings, from the transmitter
    ray_of_offset: np.ndarray  # (2 size - 1)^2: the ray through each pixel offset
    distance_of_offset: np.ndarray  # (2 size - 1)^2: each pixel offset's length in pixels


@lru_cache(maxsize=8)
def _ray_tables(size: int) -> _RayTables:
    # enough rays that neighbouring rays are at most ~1.4 pixels apart at the far corner
    angles = 4 * size
    radii = np.arange(int(np.ceil(size * np.sqrt(2))) + 1)
    margin = len(radii)
    theta = np.arange(angles) * (2 * np.pi / angles)
    d_row = np.rint(np.outer(np.sin(theta), radii)).astype(np.int64)
    d_col = np.rint(np.outer(np.cos(theta), radii)).astype(np.int64)
    offsets = np.arange(-(size - 1), size, dtype=np.float64)
    grid_row, grid_col = np.meshgrid(offsets, offsets, indexing="ij")
    return _RayTables(
        margin=margin,
        angles=angles,
        ray_offsets=d_row * (size + 2 * margin) + d_col,
        ray_of_offset=np.rint(np.arctan2(grid_row, grid_col) * (angles / (2 * np.pi))).astype(np.intp) % angles,
        distance_of_offset=np.hypot(grid_row, grid_col),
    )


def _padded_for_rays(buildings: np.ndarray) -> np.ndarray:
    """``buildings`` with a free margin wide enough for every ray to stay inside, flattened."""
    return np.pad(buildings, _ray_tables(buildings.shape[0]).margin, constant_values=False).ravel()


def line_of_sight(city: City, transmitter: tuple[int, int]) -> np.ndarray:
    """Pixels that see the transmitter along a straight line through free space."""
    return _cast_rays(city.padded_buildings, city.size, transmitter)


def visible_pixels(buildings: np.ndarray, transmitter: tuple[int, int]) -> np.ndarray:
    """:func:`line_of_sight` of a square (size, size) bool building map, without the rest of :func:`prepare_city`
    (the shortest-path graph): the generator's own line of sight, for measuring maps by region."""
    if buildings.ndim != 2 or buildings.shape[0] != buildings.shape[1]:
        raise ValueError(f"buildings: shape {buildings.shape}; expected a square (size, size) map")
    return _cast_rays(_padded_for_rays(buildings.astype(bool)), buildings.shape[0], transmitter)


def _cast_rays(padded_buildings: np.ndarray, size: int, transmitter: tuple[int, int]) -> np.ndarray:
    tables = _ray_tables(size)
    origin = (transmitter[0] + tables.margin) * (size + 2 * tables.margin) + transmitter[1] + tables.margin
    hit = padded_buildings[origin + tables.ray_offsets]
    # the radius at which each ray first meets a wall (past the end of the ray if never)
    first_hit = np.where(hit.any(axis=1), hit.argmax(axis=1), hit.shape[1])
    ray = _window(tables.ray_of_offset, size, transmitter)
    return _window(tables.distance_of_offset, size, transmitter) < first_hit[ray] - 0.5


def soften(detour: np.ndarray, sigma_px: float) -> np.ndarray:
    """``detour`` averaged with a Gaussian over the reachable pixels only (walls and courtyards do not bleed in)."""
    reachable = np.isfinite(detour)
    weight = ndimage.gaussian_filter(reachable.astype(np.float64), sigma_px, mode="nearest")
    total = ndimage.gaussian_filter(np.where(reachable, detour, 0.0), sigma_px, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(reachable, total / weight, np.inf)


def detour_m(city: City, transmitter: tuple[int, int], lit: np.ndarray) -> np.ndarray:
    """How much longer the shortest free-space path to each pixel is than the straight line (inf if unreachable)."""
    step, free = city.step, city.free
    near_rows, near_cols = city.nearest_free
    coarse_cell = (transmitter[0] // step, transmitter[1] // step)
    # the transmitter's coarse cell may sample a wall: then the path starts from the nearest free cell
    start = (int(near_rows[coarse_cell]), int(near_cols[coarse_cell]))
    geodesic = dijkstra(city.graph, directed=False, indices=start[0] * free.shape[1] + start[1]).reshape(free.shape)
    coarse_detour = np.maximum(geodesic - _window(_grid_metric_table(free.shape[0]), free.shape[0], start), 0)
    # walls carry their nearest free cell's value, so that interpolation at a wall's edge reads free space
    coarse_detour = coarse_detour[near_rows, near_cols]
    if step > 1:
        coarse_detour = ndimage.zoom(np.nan_to_num(coarse_detour, posinf=1e6), step, order=1, mode="nearest")
    detour = np.where(lit, 0.0, coarse_detour * (step * meters_per_pixel(city.size)))
    return np.where(detour >= 1e5, np.inf, detour)


@lru_cache(maxsize=8)
def _grid_metric_table(side: int) -> np.ndarray:
    offsets = np.arange(-(side - 1), side, dtype=np.float64)
    return _grid_metric(offsets[:, None], offsets[None, :])


def knife_edge_loss_db(detour: np.ndarray, wavelength_m: float) -> np.ndarray:
    """ITU-R P.526's J(v) - J(0): 0 dB on the shadow boundary, ~20 log10(2v) deep in shadow."""
    v = np.sqrt(2 * detour / wavelength_m) - 0.1
    j0 = 6.9 + 20 * np.log10(np.sqrt(0.01 + 1) - 0.1)
    return 6.9 + 20 * np.log10(np.sqrt(v**2 + 1) + v) - j0


def distance_loss_db(distance_m: np.ndarray, model: PropagationModel) -> np.ndarray:
    """Log-distance loss relative to 1 m."""
    return 10 * model.exponent * np.log10(np.maximum(distance_m, 1.0))


def path_gain_db(city: City, transmitter: tuple[int, int], model: PropagationModel = PropagationModel()) -> np.ndarray:
    """The gain (dB) from ``transmitter`` (row, col) to every pixel; -inf inside buildings and where unreachable."""
    lit = line_of_sight(city, transmitter)
    detour = detour_m(city, transmitter, lit)
    sigma_px = model.edge_softening_m / meters_per_pixel(city.size)
    if sigma_px >= 0.5:
        # only the shadow side fades: line of sight stays exactly line of sight
        detour = np.where(lit, 0.0, soften(np.where(city.buildings, np.inf, detour), sigma_px))
    straight = _window(_ray_tables(city.size).distance_of_offset, city.size, transmitter) * meters_per_pixel(city.size)
    with np.errstate(invalid="ignore"):
        gain = (
            GAIN_CEILING_DB
            - distance_loss_db(straight + detour, model)
            - knife_edge_loss_db(detour, model.diffraction_wavelength_m)
        )
    return np.where(city.buildings | ~np.isfinite(detour), -np.inf, gain)


def encode_gain(gain_db: np.ndarray) -> np.ndarray:
    """RadioMapSeer's 8-bit encoding: GAIN_FLOOR_DB..GAIN_CEILING_DB onto 0..255 (0 below the floor)."""
    scaled = (gain_db - GAIN_FLOOR_DB) / (GAIN_CEILING_DB - GAIN_FLOOR_DB) * 255
    return np.rint(np.clip(np.nan_to_num(scaled, neginf=0.0), 0, 255)).astype(np.uint8)
