"""Random city layouts like RadioMapSeer's: a 256 m x 256 m square of building footprints along streets.

A city is one or two districts, each a rotated street grid whose blocks are cut into lots; a lot holds a
rectangular or L-shaped building or stays open (a square, a car park). A park may open a larger space, and a wide
avenue may cut across at another angle. Everything is laid out in metres and rasterised at the requested size, so a 64-pixel map shows the same
kind of city as a 256-pixel one, only coarser.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CITY_SIDE_M = 256.0
# RadioMapSeer maps are 256 px for 256 m; the street grid must cover the square at any rotation
_GRID_HALF_EXTENT_M = CITY_SIDE_M * 0.75


def meters_per_pixel(size: int) -> float:
    return CITY_SIDE_M / size


def _street_grid_edges(rng: np.random.Generator, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Block start and end coordinates along one axis: blocks of 18-50 m (times ``scale``) between 6-16 m streets."""
    starts, ends = [], []
    position = -_GRID_HALF_EXTENT_M + rng.uniform(0, 40)
    while position < _GRID_HALF_EXTENT_M:
        block = rng.uniform(18, 50) * scale
        starts.append(position)
        ends.append(position + block)
        position += block + rng.uniform(6, 16)
    return np.asarray(starts), np.asarray(ends)


def _district_buildings(rng: np.random.Generator, east: np.ndarray, north: np.ndarray) -> np.ndarray:
    """The building mask of one rotated street grid, evaluated at the points (east, north) in metres."""
    angle = rng.uniform(0, np.pi / 2)
    u = np.cos(angle) * east + np.sin(angle) * north
    v = -np.sin(angle) * east + np.cos(angle) * north
    # districts differ: some have larger blocks, some more open lots
    scale = rng.uniform(0.8, 1.4)
    open_share = rng.uniform(0.03, 0.25)
    u_starts, u_ends = _street_grid_edges(rng, scale)
    v_starts, v_ends = _street_grid_edges(rng, scale)
    block_u = np.clip(np.searchsorted(u_starts, u, side="right") - 1, 0, len(u_starts) - 1)
    block_v = np.clip(np.searchsorted(v_starts, v, side="right") - 1, 0, len(v_starts) - 1)
    # position inside the block in [0, 1); outside [0, 1) means the point is on a street
    frac_u = (u - u_starts[block_u]) / (u_ends[block_u] - u_starts[block_u])
    frac_v = (v - v_starts[block_v]) / (v_ends[block_v] - v_starts[block_v])
    on_block = (frac_u >= 0) & (frac_u < 1) & (frac_v >= 0) & (frac_v < 1)

    blocks = (len(u_starts), len(v_starts))
    # long blocks are more often cut in two along their length
    lots_u = 1 + ((u_ends - u_starts)[:, None] > rng.uniform(25, 50, size=blocks))
    lots_v = 1 + ((v_ends - v_starts)[None, :] > rng.uniform(25, 50, size=blocks))
    lot_u = (np.clip(frac_u, 0, 0.999) * lots_u[block_u, block_v]).astype(int)
    lot_v = (np.clip(frac_v, 0, 0.999) * lots_v[block_u, block_v]).astype(int)
    in_lot_u = np.clip(frac_u, 0, 0.999) * lots_u[block_u, block_v] - lot_u
    in_lot_v = np.clip(frac_v, 0, 0.999) * lots_v[block_u, block_v] - lot_v

    lots = blocks + (2, 2)
    # setbacks from the lot edges (fractions of the lot), so neighbours leave narrow gaps between them
    low_u, high_u = rng.uniform(0.0, 0.15, lots), 1 - rng.uniform(0.0, 0.15, lots)
    low_v, high_v = rng.uniform(0.0, 0.15, lots), 1 - rng.uniform(0.0, 0.15, lots)
    built = rng.random(lots) > open_share
    # an L-shaped footprint: a corner notch of 30-60 % of each side cut away
    notched = rng.random(lots) < 0.45
    notch_u, notch_v = rng.uniform(0.3, 0.6, lots), rng.uniform(0.3, 0.6, lots)
    notch_at_high_u, notch_at_high_v = rng.random(lots) < 0.5, rng.random(lots) < 0.5

    lot = (block_u, block_v, lot_u, lot_v)
    inside = (in_lot_u >= low_u[lot]) & (in_lot_u < high_u[lot]) & (in_lot_v >= low_v[lot]) & (in_lot_v < high_v[lot])
    notch_side_u = np.where(notch_at_high_u[lot], in_lot_u > 1 - notch_u[lot], in_lot_u < notch_u[lot])
    notch_side_v = np.where(notch_at_high_v[lot], in_lot_v > 1 - notch_v[lot], in_lot_v < notch_v[lot])
    in_notch = notched[lot] & notch_side_u & notch_side_v
    return on_block & built[lot] & inside & ~in_notch


def random_city(rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``size`` x ``size`` boolean building mask (True = building) of a random city."""
    centres = (np.arange(size) + 0.5) * meters_per_pixel(size) - CITY_SIDE_M / 2
    east, north = np.meshgrid(centres, -centres)
    buildings = _district_buildings(rng, east, north)
    if rng.random() < 0.5:
        # a second district with its own street orientation on one side of a random boundary line
        normal = rng.uniform(0, 2 * np.pi)
        side = np.cos(normal) * east + np.sin(normal) * north > rng.uniform(-60, 60)
        buildings = np.where(side, _district_buildings(rng, east, north), buildings)
    if rng.random() < 0.25:
        # an open space (a park, a square, a rail yard): an ellipse of 30-100 m half-axes
        centre_east, centre_north = rng.uniform(-128, 128, size=2)
        heading = rng.uniform(0, np.pi)
        along = np.cos(heading) * (east - centre_east) + np.sin(heading) * (north - centre_north)
        across = -np.sin(heading) * (east - centre_east) + np.cos(heading) * (north - centre_north)
        buildings &= (along / rng.uniform(30, 100)) ** 2 + (across / rng.uniform(30, 100)) ** 2 > 1
    if rng.random() < 0.5:
        # a wide avenue crossing at an angle of its own
        heading = rng.uniform(0, np.pi)
        offset = np.abs(-np.sin(heading) * east + np.cos(heading) * north - rng.uniform(-80, 80))
        buildings &= offset > rng.uniform(8, 16)
    return buildings


def street_network(buildings: np.ndarray) -> np.ndarray:
    """The largest connected free space: the streets, without courtyards walled in by buildings."""
    regions, count = ndimage.label(~buildings)
    if count == 0:
        raise ValueError("a city with no free space cannot hold a transmitter")
    largest = np.bincount(regions.ravel())[1:].argmax() + 1
    return regions == largest


def place_transmitters(rng: np.random.Generator, buildings: np.ndarray, count: int) -> np.ndarray:
    """``count`` distinct transmitter pixels ``(row, col)`` in the streets, off the walls where there is room."""
    free = street_network(buildings)
    clear = free.copy()
    # a transmitter must not touch a wall: its four neighbours are free space
    clear[1:, :] &= free[:-1, :]
    clear[:-1, :] &= free[1:, :]
    clear[:, 1:] &= free[:, :-1]
    clear[:, :-1] &= free[:, 1:]
    candidates = np.flatnonzero(clear)
    if len(candidates) < count:
        candidates = np.flatnonzero(free)
    if len(candidates) < count:
        raise ValueError(f"a city with {len(candidates)} free pixels cannot hold {count} transmitters")
    chosen = rng.choice(candidates, size=count, replace=False)
    return np.stack(np.unravel_index(chosen, buildings.shape), axis=1)
