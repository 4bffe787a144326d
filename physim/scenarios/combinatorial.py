"""The ``combinatorial`` scenario: PHYRE-like multi-object scenes and template splits.

The paper's third setting (reference §2), rebuilt on pymunk. A video is one task of a
template (object layout, :func:`~physim.scenarios.phyre_scenes.task_layout`) plus a red
action ball placed by the paper's heuristic from the video's own random stream
``np.random.default_rng([seed, index])``, simulated for 32 frames from rest; a model is
conditioned on 1 frame.

Splits (templates: 6, 30 or 60 training templates, 10060..10069 held out):

- ``train``: a random training template and one of its training tasks
  ``0 .. n_tasks - n_eval_tasks - 1``; new action ball per video.
- ``in-template``: training templates × their held-out tasks (the last ``n_eval_tasks``),
  a grid (60 templates × 10 tasks = 600 videos, the paper's in-template set size).
- ``out-of-template``: the 10 held-out templates × all ``n_tasks`` tasks (1000 videos).

Each :class:`~physim.record.Record` carries states of every body at every frame
(positions and velocities of body origins, angles, angular velocities), contact-begin
events (``event_pairs`` body indices; ``j < 0`` a wall), and in ``extra`` the geometry
(JSON-able bodies: kind, shapes, static flag, colour, owning object type), the action,
masses and the physics constants. ``objects`` lists, per body, its bounding radius
(world units, around the body origin), mass (``inf`` for static bodies), a coarse shape
label (``ball``, or ``square`` for any polygonal body: bar, jar, sticks; the exact kind is
``extra["bodies"][i]["kind"]``) and colour. Draw a record with :func:`geometry` (also
``spec.geometry(record)``), not ``Geometry.from_objects``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import numpy as np

from physim import rigid, world
from physim.record import Record
from physim.rigid import BodySpec
from physim.scenarios import register
from physim.scenarios.phyre_scenes import (
    HELD_OUT_TEMPLATES,
    PHYSICS,
    TEMPLATE_SETS,
    place_action,
    task_layout,
    template_objects,
)
from physim.scenarios.phyre_scenes import _action_ball as action_ball

LEVELS = {"train": "id", "in-template": "id", "out-of-template": "ood"}


@dataclasses.dataclass(frozen=True)
class Combinatorial:
    """Spec of the combinatorial scenes.

    Attributes:
      templates: size of the training template set, 6, 30 or 60.
      n_tasks: tasks (object layouts) per template (PHYRE: 100).
      n_eval_tasks: the last tasks of each training template, held out for in-template
        evaluation.
      task_seed: seed of the task bank (layouts depend on it, not on the dataset seed).
      n_frames, dt, n_cond: video length, seconds per frame, conditioning frames.
      substeps: pymunk steps per frame (20 = the reference's 1/60 PHYRE-second step).
    """

    name: ClassVar[str] = "combinatorial"
    splits: ClassVar[tuple[str, ...]] = ("train", "in-template", "out-of-template")
    random_splits: ClassVar[tuple[str, ...]] = ("train",)

    templates: int = 60
    n_tasks: int = 100
    n_eval_tasks: int = 10
    task_seed: int = 0
    n_frames: int = world.N_FRAMES
    dt: float = world.FRAME_DT
    n_cond: int = 1
    substeps: int = PHYSICS.substeps

    def __post_init__(self):
        if self.templates not in TEMPLATE_SETS:
            raise ValueError(
                f"templates must be one of {sorted(TEMPLATE_SETS)}, got {self.templates}"
            )
        if not 0 < self.n_eval_tasks < self.n_tasks:
            raise ValueError(
                f"need 0 < n_eval_tasks < n_tasks, got {self.n_eval_tasks}, {self.n_tasks}"
            )
        if self.n_frames < 2 or not self.dt > 0 or not 0 <= self.n_cond < self.n_frames:
            raise ValueError(
                f"bad frames: n_frames={self.n_frames}, dt={self.dt}, n_cond={self.n_cond}"
            )
        if self.substeps < 1 or self.task_seed < 0:
            raise ValueError(
                f"need substeps >= 1 and task_seed >= 0, got {self.substeps}, {self.task_seed}"
            )

    # -- splits --------------------------------------------------------------------
    @property
    def train_templates(self) -> tuple[int, ...]:
        return TEMPLATE_SETS[self.templates]

    @property
    def physics(self) -> rigid.RigidConfig:
        return dataclasses.replace(PHYSICS, substeps=self.substeps)

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"{self.name}: unknown split {split!r}; known: {list(self.splits)}")

    def grid(self, split: str) -> list[tuple[str, dict[str, int]]]:
        """Deterministic evaluation set of ``split`` as (level, params); [] for ``train``."""
        self.check_split(split)
        if split == "train":
            return []
        if split == "in-template":
            tasks = range(self.n_tasks - self.n_eval_tasks, self.n_tasks)
            temps = self.train_templates
        else:
            tasks, temps = range(self.n_tasks), HELD_OUT_TEMPLATES
        return [(LEVELS[split], {"template": t, "task": k}) for t in temps for k in tasks]

    def size(self, split: str) -> int | None:
        """Videos in an evaluation split; None for the random ``train`` split."""
        self.check_split(split)
        return None if split in self.random_splits else len(self.grid(split))

    def sample_params(self, rng: np.random.Generator, split: str) -> tuple[str, dict[str, int]]:
        """A random (level, {"template", "task"}) of ``split``."""
        self.check_split(split)
        n_train = self.n_tasks - self.n_eval_tasks
        if split == "train":
            temps, lo, hi = self.train_templates, 0, n_train
        elif split == "in-template":
            temps, lo, hi = self.train_templates, n_train, self.n_tasks
        else:
            temps, lo, hi = HELD_OUT_TEMPLATES, 0, self.n_tasks
        template = int(temps[int(rng.integers(len(temps)))])
        return LEVELS[split], {"template": template, "task": int(rng.integers(lo, hi))}

    # -- videos --------------------------------------------------------------------
    def build(self, params: dict[str, Any], rng: np.random.Generator, *, id: str, split: str,
              level: str, seed: int) -> Record:  # fmt: skip
        """Simulate the video of ``params`` (template, task) with its action ball drawn
        from ``rng``."""
        template, task = int(params["template"]), int(params["task"])
        scene, owners = task_layout(template, task, self.task_seed)
        action = place_action(scene, rng)
        bodies = (*scene, action_ball(*action))
        owners = (*owners, "action_ball")
        roll = rigid.simulate_bodies(bodies, self.physics, n_frames=self.n_frames, dt=self.dt)
        extra = {
            "template": template,
            "task": task,
            "object_types": list(template_objects(template)),
            "action": [float(a) for a in action],
            "action_index": len(bodies) - 1,
            "bodies": [b.to_dict() | {"object": o} for b, o in zip(bodies, owners, strict=True)],
            "masses": [
                None if b.static else float(m) for b, m in zip(bodies, roll.masses, strict=True)
            ],
            "centers_of_gravity": roll.centers_of_gravity.tolist(),
            "physics": self.physics.to_dict(),
        }
        objects = world.Objects(
            radii=np.array([_bounding_radius(b) for b in bodies]),
            masses=roll.masses.copy(),
            # world.SHAPES has no bar/jar/sticks codes: polygonal bodies are labelled
            # "square"; the exact kind and geometry are in extra["bodies"].
            shapes=tuple("ball" if b.kind == "ball" else "square" for b in bodies),
            colors=tuple(b.color for b in bodies),
        )
        return Record(
            id=id, scenario=self.name, split=split, level=level, seed=int(seed),
            params={"template": template, "task": task}, objects=objects,
            trajectory=roll.trajectory, n_cond=self.n_cond, extra=extra,
        )  # fmt: skip

    def sample(self, seed: int = 0, split: str = "train", index: int = 0) -> Record:
        """Video ``index`` of ``split``: a random task (train) or grid row ``index``."""
        self.check_split(split)
        if index < 0:
            raise ValueError(f"video index must be >= 0, got {index}")
        rng = np.random.default_rng([int(seed), int(index)])
        if split in self.random_splits:
            level, params = self.sample_params(rng, split)
        else:
            grid = _grid(self, split)
            if index >= len(grid):
                raise ValueError(f"{self.name}/{split}: index {index} >= grid size {len(grid)}")
            level, params = grid[index]
        vid = f"{self.name}-{split}-{int(index):07d}"
        return self.build(params, rng, id=vid, split=split, level=level, seed=seed)

    def geometry(self, record: Record):
        """The renderer's geometry of one of this scenario's records (see :func:`geometry`)."""
        return geometry(record)

    def records(self, seed: int, split: str, indices) -> list[Record]:
        """Videos ``indices`` of ``split`` (each a pure function of (seed, index))."""
        return [self.sample(seed, split, int(i)) for i in indices]


@functools.lru_cache(maxsize=64)
def _grid(spec: Combinatorial, split: str) -> tuple[tuple[str, dict[str, int]], ...]:
    return tuple(spec.grid(split))


def _bounding_radius(body: BodySpec) -> float:
    r = 0.0
    for sh in body.shapes:
        if sh.kind == "circle":
            r = max(r, float(np.hypot(*sh.offset)) + sh.radius)
        else:
            r = max(r, float(np.hypot(*np.asarray(sh.vertices).T).max()))
    return r


def bodies_of(record: Record) -> list[BodySpec]:
    """The :class:`~physim.rigid.BodySpec` list stored in a combinatorial record."""
    return [BodySpec.from_dict(d) for d in record.extra["bodies"]]


def geometry(record: Record):
    """The renderer's :class:`physim.geometry.Geometry` of a combinatorial record (body i
    = trajectory body i; static black, dynamic gray, action ball red)."""
    from physim.geometry import Geometry

    g = Geometry.empty()
    for i, b in enumerate(bodies_of(record)):
        for sh in b.shapes:
            if sh.kind == "circle":
                g = g.add_circle(i, sh.radius, b.color, center=sh.offset)
            else:
                g = g.add_polygon(i, sh.vertices, b.color)
    return g


def render(record: Record, resolution: int = world.DEFAULT_RESOLUTION) -> np.ndarray:
    """Frames (T, R, R, 3) uint8 of a combinatorial record."""
    from physim.render import render_bodies

    traj = record.trajectory
    return render_bodies(geometry(record), traj.positions, traj.angles, resolution)


register("combinatorial", Combinatorial)
