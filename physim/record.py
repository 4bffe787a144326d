"""Trajectories and video records: the data every other part of physim consumes.

A :class:`Trajectory` is what a simulator returns: states sampled exactly at frame
times plus the events between them. A :class:`Record` is one video of a dataset: the
trajectory together with the objects' attributes and the metadata evaluators score
against (scenario, split, OOD level, seed, parameters).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from physim import world

# Event partner codes for walls (j < 0 in ``Trajectory.event_pairs``).
WALL_LEFT, WALL_RIGHT, WALL_BOTTOM, WALL_TOP = -1, -2, -3, -4


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """States of N bodies at T frame times, and the events between them.

    Attributes:
      times: (T,) float64 seconds, ``t_k = k * dt``.
      positions: (T, N, 2) float64 world units (body centres; y up).
      velocities: (T, N, 2) float64 world units per second.
      angles: (T, N) float64 radians, counter-clockwise (zeros for discs).
      angular_velocities: (T, N) float64 radians per second.
      event_times: (E,) float64 seconds of each collision.
      event_frames: (E,) int32, the first frame index whose time is >= the event time.
      event_pairs: (E, 2) int32 body indices ``(i, j)``; ``j < 0`` is a wall
        (:data:`WALL_LEFT`, :data:`WALL_RIGHT`, :data:`WALL_BOTTOM`, :data:`WALL_TOP`).
    """

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    angles: np.ndarray
    angular_velocities: np.ndarray
    event_times: np.ndarray
    event_frames: np.ndarray
    event_pairs: np.ndarray

    @classmethod
    def of(cls, times, positions, velocities, angles, angular_velocities, event_times,
           event_frames, event_pairs) -> Trajectory:
        """The same as the constructor, positionally, without the frozen dataclass's
        per-field ``object.__setattr__`` (a third of a per-video ``physim.simulate`` call
        otherwise)."""
        self = object.__new__(cls)
        self.__dict__.update(times=times, positions=positions, velocities=velocities,
                             angles=angles, angular_velocities=angular_velocities,
                             event_times=event_times, event_frames=event_frames,
                             event_pairs=event_pairs)
        return self

    @property
    def n_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_bodies(self) -> int:
        return int(self.positions.shape[1])

    def flip_horizontal(self) -> Trajectory:
        """Mirror about the vertical line ``x = WORLD_SIZE / 2`` (states and events).

        Left and right walls swap, x and vx change sign about the centre, angles and
        angular velocities change sign.
        """
        pos = self.positions.copy()
        pos[..., 0] = world.WORLD_SIZE - pos[..., 0]
        vel = self.velocities.copy()
        vel[..., 0] = -vel[..., 0]
        pairs = self.event_pairs.copy()
        left, right = pairs[:, 1] == WALL_LEFT, pairs[:, 1] == WALL_RIGHT
        pairs[left, 1], pairs[right, 1] = WALL_RIGHT, WALL_LEFT
        return dataclasses.replace(
            self,
            positions=pos,
            velocities=vel,
            angles=-self.angles,
            angular_velocities=-self.angular_velocities,
            event_pairs=pairs,
        )


@dataclasses.dataclass(frozen=True)
class Record:
    """One video: objects, trajectory and the metadata evaluators need.

    Attributes:
      id: unique string id within a dataset, e.g. ``"uniform-id-000042"``.
      scenario: registry name of the scenario (``"uniform"``, ``"collision"``, ...).
      split: ``"train"``, ``"id"`` or ``"ood"`` (or a scenario-specific split).
      level: OOD level name, ``"id"`` for in-distribution (e.g. ``"r"``, ``"v"``, ``"rv"``).
      seed: the integer seed this video's random draws derive from.
      params: scalar parameters that defined it (e.g. ``{"r": 1.0, "v": 2.5}``).
      objects: shapes, colours, radii and masses (:class:`physim.world.Objects`).
      trajectory: states at every frame and the events (:class:`Trajectory`).
      n_cond: number of conditioning frames a model is given.
      extra: scenario-specific JSON-able metadata (e.g. combinatorial geometry).
    """

    id: str
    scenario: str
    split: str
    level: str
    seed: int
    params: dict[str, float]
    objects: world.Objects
    trajectory: Trajectory
    n_cond: int = 3
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    # Convenience accessors used throughout evals and loaders.
    @property
    def positions(self) -> np.ndarray:
        return self.trajectory.positions

    @property
    def velocities(self) -> np.ndarray:
        return self.trajectory.velocities

    @property
    def radii(self) -> np.ndarray:
        return self.objects.radii

    @property
    def colors(self) -> tuple[str, ...]:
        return self.objects.colors

    @property
    def shapes(self) -> tuple[str, ...]:
        return self.objects.shapes

    def flip_horizontal(self) -> Record:
        """The mirrored video (truth flips with the frames)."""
        return dataclasses.replace(self, trajectory=self.trajectory.flip_horizontal())
