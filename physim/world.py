"""World conventions shared by every part of physim.

The world is the square box ``[0, WORLD_SIZE]²`` in world units, y pointing up.
Frame ``k`` of a video shows the world at time ``t_k = k * FRAME_DT`` seconds.
A pixel of a ``R × R`` frame maps to world coordinates by::

    col = x / WORLD_SIZE * R          row = (WORLD_SIZE - y) / WORLD_SIZE * R

with pixel centres at half-integers (pixel ``(row, col)`` covers
``[row, row + 1) × [col, col + 1)`` in these continuous coordinates).

Objects are described by arrays, one entry per object, so that Numba kernels can
take them directly: ``radii (N,)``, ``masses (N,)``, ``shapes (N,)`` (integer codes,
see :data:`SHAPES`) and ``colors (N, 3)`` uint8. Names of shapes and colours are
kept alongside for records and reports.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

WORLD_SIZE = 10.0  # world units; the box is [0, WORLD_SIZE]²
FRAME_DT = 0.1  # seconds between frames
N_FRAMES = 32  # frames per video
DEFAULT_RESOLUTION = 128  # pixels per side
DENSITY = 1.0  # mass = DENSITY * area

# Integer shape codes used in arrays; index = code.
SHAPES: tuple[str, ...] = ("ball", "square", "ring")
SHAPE_CODES: dict[str, int] = {name: i for i, name in enumerate(SHAPES)}
RING_INNER = 0.6  # inner radius of a ring as a fraction of its outer radius

# Named colours (RGB uint8). The basic scenarios use pure red/blue on white like the
# paper; the PHYRE palette (vis.WAD_COLORS) is used by the combinatorial scenes.
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "blue": (0, 0, 255),
    "green": (0, 160, 0),
    "yellow": (255, 200, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 200, 200),
    "phyre_red": (0xF3, 0x4F, 0x46),
    "phyre_green": (0x6B, 0xCE, 0xBB),
    "phyre_blue": (0x18, 0x77, 0xF2),
    "phyre_purple": (0x4B, 0x4A, 0xA4),
    "phyre_gray": (0xB9, 0xCA, 0xD2),
}
BACKGROUND = "white"


def color_rgb(name: str) -> np.ndarray:
    """RGB uint8 array (3,) of a named colour; raises ``ValueError`` on unknown names."""
    try:
        return np.asarray(PALETTE[name], dtype=np.uint8)
    except KeyError:
        raise ValueError(f"unknown colour {name!r}; known: {sorted(PALETTE)}") from None


def shape_code(name: str) -> int:
    """Integer code of a shape name; raises ``ValueError`` on unknown names."""
    try:
        return SHAPE_CODES[name]
    except KeyError:
        raise ValueError(f"unknown shape {name!r}; known: {list(SHAPES)}") from None


def frame_times(n_frames: int = N_FRAMES, dt: float = FRAME_DT) -> np.ndarray:
    """Times of frames ``t_k = k * dt`` in seconds, float64 (n_frames,)."""
    return np.arange(n_frames, dtype=np.float64) * dt


def disc_mass(radius, density: float = DENSITY):
    """Mass of a disc (or square/ring treated as its disc) of ``radius`` world units."""
    return density * np.pi * np.asarray(radius, dtype=np.float64) ** 2


def world_to_pixel(xy, resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """Continuous pixel coordinates ``(..., 2)`` as (col, row) of world points ``(..., 2)``."""
    xy = np.asarray(xy, dtype=np.float64)
    s = resolution / WORLD_SIZE
    return np.stack([xy[..., 0] * s, (WORLD_SIZE - xy[..., 1]) * s], axis=-1)


def pixel_to_world(colrow, resolution: int = DEFAULT_RESOLUTION) -> np.ndarray:
    """World points ``(..., 2)`` of continuous pixel coordinates ``(..., 2)`` as (col, row)."""
    colrow = np.asarray(colrow, dtype=np.float64)
    s = WORLD_SIZE / resolution
    return np.stack([colrow[..., 0] * s, WORLD_SIZE - colrow[..., 1] * s], axis=-1)


@dataclasses.dataclass(frozen=True)
class Objects:
    """Static description of the N discs of a scene (everything but their motion).

    Attributes:
      radii: (N,) float64 world units. For a square, the half side; for a ring, the
        outer radius.
      masses: (N,) float64, ``DENSITY * pi * r**2`` unless given.
      shapes: (N,) tuple of shape names from :data:`SHAPES`.
      colors: (N,) tuple of colour names from :data:`PALETTE`.
    """

    radii: np.ndarray
    masses: np.ndarray
    shapes: tuple[str, ...]
    colors: tuple[str, ...]

    @staticmethod
    def make(radii, shapes=None, colors=None, masses=None) -> Objects:
        """Validated :class:`Objects`; shapes default to balls, colours to red, blue, ..."""
        radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
        n = radii.shape[0]
        if radii.ndim != 1 or n == 0:
            raise ValueError(f"radii must be a non-empty 1-D array, got shape {radii.shape}")
        if not np.all(np.isfinite(radii)) or np.any(radii <= 0):
            raise ValueError(f"radii must be finite and > 0, got {radii.tolist()}")
        default_colors = ("red", "blue", "green", "yellow", "magenta", "cyan")
        shapes = tuple(shapes) if shapes is not None else ("ball",) * n
        colors = (
            tuple(colors) if colors is not None else tuple(default_colors[i % 6] for i in range(n))
        )
        if len(shapes) != n or len(colors) != n:
            raise ValueError(f"need {n} shapes and colours, got {len(shapes)} and {len(colors)}")
        for s in shapes:
            shape_code(s)
        for c in colors:
            color_rgb(c)
        masses = disc_mass(radii) if masses is None else np.asarray(masses, dtype=np.float64)
        if masses.shape != (n,) or np.any(masses <= 0):
            raise ValueError(f"masses must be (N,) and > 0, got {masses}")
        return Objects(radii=radii, masses=masses, shapes=shapes, colors=colors)

    @property
    def n(self) -> int:
        return int(self.radii.shape[0])

    @property
    def shape_codes(self) -> np.ndarray:
        """(N,) int32 codes of :attr:`shapes` (read-only, shared by equal shape tuples)."""
        return _shape_codes(tuple(self.shapes))

    @property
    def rgb(self) -> np.ndarray:
        """(N, 3) uint8 colours (read-only, shared by equal colour tuples)."""
        return _rgb(tuple(self.colors))


# Per-call renders read these for every video; a few thousand distinct tuples at most.
@functools.lru_cache(maxsize=4096)
def _shape_codes(shapes: tuple[str, ...]) -> np.ndarray:
    out = np.array([SHAPE_CODES[s] for s in shapes], dtype=np.int32)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=4096)
def _rgb(colors: tuple[str, ...]) -> np.ndarray:
    out = np.stack([color_rgb(c) for c in colors])
    out.flags.writeable = False
    return out
