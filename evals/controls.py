"""Calibration controls of the physics judge (:mod:`evals.judge`), from our own simulators.

Positive controls (plausible and faithful by construction):

- ``truth``: the truth render at the asked resolution;
- ``mp4_default`` / ``mp4_ours``: the truth through H.264 at imageio's default quality (5,
  the paper's files) and at our export quality (10), parsed with the lossy preset.

Negative controls keep the conditioning frames of the truth (what a model is given) and
alter what follows:

- ``frozen``: the last conditioning frame repeated;
- ``reversed``: discs re-simulated from the last conditioning state with every velocity
  negated; rigid scenes played backwards (their conditioning frame is the truth's last);
- ``teleport``: one object shifted by 3 units from a third of the generated frames on;
- ``vanish``: one object removed from a third of the generated frames on;
- ``color_swap``: two objects exchange colours (one object: it turns another colour);
- wrong physics, re-simulated from the last conditioning state with the simulator's own
  parameters: ``gravity_x0``, ``gravity_x0.5``, ``gravity_x2``, ``restitution_0``,
  ``restitution_1``, ``friction_0``, ``masses_swapped``. A family is generated only where
  it changes the law (no gravity families without gravity, no ``restitution_1`` where
  restitution is already 1), and a re-simulation that moves no object by more than
  ``min_effect`` units from the truth is dropped (it is the truth).

:func:`calibrate` judges every control and :func:`confusion` tabulates, per control and per
check, how often the judge flags it: the true-positive rate on negatives (by any check,
and by the check that names the cause, :data:`EXPECTED`) and the false-positive rate on
positives. :func:`confusion_markdown` renders the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from evals import judge

POSITIVE = ("truth", "mp4_default", "mp4_ours")
BASIC_NEGATIVE = ("frozen", "reversed", "teleport", "vanish", "color_swap")
PHYSICS_NEGATIVE = ("gravity_x0", "gravity_x0.5", "gravity_x2", "restitution_0",
                    "restitution_1", "friction_0", "masses_swapped")  # fmt: skip
FAMILIES = POSITIVE + BASIC_NEGATIVE + PHYSICS_NEGATIVE
# The checks that name each negative family's cause (flagged by one of them = named).
EXPECTED: dict[str, tuple[str, ...]] = {
    "frozen": ("inertia", "acceleration", "unsupported"),
    "reversed": ("inertia", "spontaneous", "energy", "acceleration"),
    "teleport": ("teleport",),
    "vanish": ("vanish",),
    "color_swap": ("color",),
    "gravity_x0": ("acceleration", "unsupported"),
    "gravity_x0.5": ("acceleration",),
    "gravity_x2": ("acceleration",),
    "restitution_0": ("energy",),
    "restitution_1": ("energy",),
    "friction_0": ("friction",),
    "masses_swapped": ("momentum",),
}
MP4_QUALITY = {"mp4_default": 5, "mp4_ours": 10}


@dataclasses.dataclass(frozen=True)
class Control:
    """One calibration video.

    Attributes:
      family: name in :data:`FAMILIES`.
      frames: (T, R, R, 3) uint8 video.
      record: the record whose conditioning frames the video starts with (the judge's
        input besides the frames; its later states are the fidelity truth).
      luma: (T, R, R) codec luma (mp4 controls) or None.
      preset: judge preset to parse it with (``exact`` or ``lossy``).
      truth: the fidelity truth when it is not ``record`` (reversed rigid scenes).
    """

    family: str
    frames: np.ndarray
    record: object
    luma: np.ndarray | None = None
    preset: str = "exact"
    truth: object = None

    @property
    def positive(self) -> bool:
        return self.family in POSITIVE


def families_for(spec) -> tuple[str, ...]:
    """The control families that change something in scenario ``spec``."""
    laws = judge.laws_for(spec)
    out = list(POSITIVE + BASIC_NEGATIVE)
    if np.linalg.norm(laws.g) > 0:
        out += ["gravity_x0", "gravity_x0.5", "gravity_x2"]
    rigid = hasattr(spec, "physics")
    multi = rigid or getattr(spec, "colors", None) is not None  # collision-like: 2 discs
    if multi:
        if laws.restitution > 0:
            out.append("restitution_0")
        if laws.restitution < 1:
            out.append("restitution_1")
        if rigid and laws.friction > 0:
            out.append("friction_0")
        out.append("masses_swapped")
    return tuple(out)


# --------------------------------------------------------------------------- discs


def _disc_resim(rec, spec, *, gravity=None, restitution=None, masses=None, flip=False):
    """Positions (T, N, 2) of ``rec`` re-simulated from its last conditioning state."""
    from physim import physics

    tr = rec.trajectory
    c = rec.n_cond - 1
    vel = -tr.velocities[c] if flip else tr.velocities[c]
    out = physics.simulate_batch(
        rec.objects.radii[None], (rec.objects.masses if masses is None else masses)[None],
        tr.positions[c][None], vel[None],
        gravity=spec.gravity if gravity is None else gravity,
        restitution=spec.restitution if restitution is None else restitution,
        n_frames=tr.n_frames - c, dt=spec.dt,
        max_events=getattr(spec, "max_events", physics.MAX_EVENTS),
    )  # fmt: skip
    return np.concatenate([tr.positions[:c], out["positions"][0]])


def _render_discs(rec, positions, resolution: int, objects=None):
    from physim.render import render

    angles = np.zeros(positions.shape[:2])  # discs do not turn
    tr = dataclasses.replace(rec.trajectory, positions=positions, angles=angles)
    return render(tr, rec.objects if objects is None else objects, resolution)


def _toward_centre(p: np.ndarray, amount: float) -> np.ndarray:
    return np.where(p < 5.0, amount, -amount)


def disc_control(family: str, rec, spec, resolution: int, min_effect: float = 0.1,
                 mass_ratio: float = 1.5):
    """The ``family`` control of disc record ``rec`` at ``resolution``; None when the
    family does not apply to it (less than ``min_effect`` units of change, one object or
    masses within ``mass_ratio`` of each other for a swap of masses)."""
    from physim import world

    tr = rec.trajectory
    pos = tr.positions
    c = rec.n_cond - 1
    n_t, n = pos.shape[:2]
    k_at = c + 1 + (n_t - c - 1) // 3
    laws = judge.laws_for(spec)
    if family in POSITIVE or family in ("frozen",):
        p = pos.copy()
        if family == "frozen":
            p[c + 1 :] = pos[c]
        return _render_discs(rec, p, resolution)
    if family == "teleport":
        p = pos.copy()
        p[k_at:, 0, 1] += _toward_centre(pos[k_at, 0, 1], 3.0)
        return _render_discs(rec, p, resolution)
    if family == "vanish":
        p = pos.copy()
        p[k_at:, 0] = -50.0
        return _render_discs(rec, p, resolution)
    if family == "color_swap":
        cols = list(rec.objects.colors)
        if n >= 2:
            cols[0], cols[1] = cols[1], cols[0]
        else:
            cols[0] = "blue" if cols[0] != "blue" else "red"
        other = dataclasses.replace(rec.objects, colors=tuple(cols))
        head = _render_discs(rec, pos[:k_at], resolution)
        tail = _render_discs(rec, pos[k_at:], resolution, objects=other)
        return np.concatenate([head, tail])
    if family == "reversed":
        return _render_discs(rec, _disc_resim(rec, spec, flip=True), resolution)
    g = laws.g
    kw: dict = {}
    if family.startswith("gravity_x"):
        kw["gravity"] = tuple(g * float(family[len("gravity_x"):]))
    elif family.startswith("restitution_"):
        kw["restitution"] = float(family.split("_")[1])
    elif family == "masses_swapped":
        if n < 2:
            return None
        m = rec.objects.masses.copy()
        if max(m[0], m[1]) < mass_ratio * min(m[0], m[1]):
            return None  # near-equal masses: swapping them changes too little to judge
        m[[0, 1]] = m[[1, 0]]
        kw["masses"] = m
    else:
        return None
    p = _disc_resim(rec, spec, **kw)
    inside = np.all((pos > 0) & (pos < world.WORLD_SIZE), axis=-1)
    if not np.any(inside & (np.linalg.norm(p - pos, axis=-1) > min_effect)):
        return None
    return _render_discs(rec, p, resolution)


# --------------------------------------------------------------------------- rigid scenes


def _scene_render(rec, resolution: int):
    from physim.scenarios.combinatorial import render

    return render(rec, resolution)


def _with_traj(rec, **fields):
    return dataclasses.replace(rec, trajectory=dataclasses.replace(rec.trajectory, **fields))


def scene_control(family: str, rec, spec, resolution: int, min_effect: float = 0.1):
    """(frames, conditioning record) of the ``family`` control of a rigid-scene record
    (n_cond = 1); None when the family does not apply."""
    tr = rec.trajectory
    pos = tr.positions
    c = rec.n_cond - 1
    if c != 0:
        raise ValueError("rigid-scene controls need one conditioning frame")
    n_t = tr.n_frames
    k_at = 1 + (n_t - 1) // 3
    a = int(rec.extra["action_index"])
    if family in POSITIVE:
        return _scene_render(rec, resolution), rec
    if family == "frozen":
        f = _scene_render(rec, resolution)
        f[1:] = f[0]
        return f, rec
    if family in ("teleport", "vanish"):
        p = pos.copy()
        if family == "teleport":
            p[k_at:, a, 0] += _toward_centre(pos[k_at, a, 0], 3.0)
        else:
            p[k_at:, a] = -50.0
        return _scene_render(_with_traj(rec, positions=p), resolution), rec
    if family == "color_swap":
        bodies = [dict(b) for b in rec.extra["bodies"]]
        dyn = [i for i, b in enumerate(bodies) if not b["static"] and i != a]
        if not dyn:
            return None
        j = dyn[0]
        bodies[a]["color"], bodies[j]["color"] = bodies[j]["color"], bodies[a]["color"]
        other = dataclasses.replace(rec, extra=rec.extra | {"bodies": bodies})
        full, swapped = _scene_render(rec, resolution), _scene_render(other, resolution)
        return np.concatenate([full[:k_at], swapped[k_at:]]), rec
    if family == "reversed":
        back = _with_traj(rec, positions=pos[::-1].copy(), angles=tr.angles[::-1].copy(),
                          velocities=-tr.velocities[::-1], angular_velocities=-tr.angular_velocities[::-1])  # fmt: skip  # noqa: E501
        return _scene_render(back, resolution), back
    out = scene_resim(family, rec, spec, min_effect)
    if out is None:
        return None
    return _scene_render(out[0], resolution), rec


def scene_resim(family: str, rec, spec, min_effect: float = 0.1):
    """The wrong-physics ``family`` (gravity, restitution, friction, masses) of a rigid-scene
    record, re-simulated from its first state: ``(record with the control's trajectory,
    rigid.RigidRollout)``; None when the family is not one of them or moves nothing by
    more than ``min_effect`` units."""
    from physim import rigid
    from physim.scenarios.combinatorial import bodies_of

    pos = rec.trajectory.positions
    a = int(rec.extra["action_index"])
    bodies = bodies_of(rec)
    cfg = spec.physics
    if family.startswith("gravity_x"):
        f = float(family[len("gravity_x"):])
        cfg = dataclasses.replace(cfg, gravity=tuple(float(x) * f for x in cfg.gravity))
    elif family.startswith("restitution_"):
        cfg = dataclasses.replace(cfg, restitution=float(family.split("_")[1]))
    elif family == "friction_0":
        cfg = dataclasses.replace(cfg, friction=0.0)
    elif family == "masses_swapped":
        masses = np.asarray(rec.objects.masses)
        dyn = [i for i, b in enumerate(bodies) if not b.static and i != a]
        if not dyn:
            return None
        j = max(dyn, key=lambda i: abs(np.log(masses[i] / masses[a])))
        dens = cfg.density
        bodies[a] = dataclasses.replace(bodies[a], density=dens * masses[j] / masses[a])
        bodies[j] = dataclasses.replace(bodies[j], density=dens * masses[a] / masses[j])
    else:
        return None
    roll = rigid.simulate_bodies(bodies, cfg, n_frames=rec.trajectory.n_frames, dt=spec.dt)
    moved = np.linalg.norm(roll.trajectory.positions - pos, axis=-1).max()
    if moved <= min_effect:
        return None
    return dataclasses.replace(rec, trajectory=roll.trajectory), roll


# --------------------------------------------------------------------------- controls


def truth_records(spec, seed: int, split: str, n: int, start: int = 0):
    """``n`` records of ``split`` (random splits: indices start.. ; grids: spread rows)."""
    size = spec.size(split)
    if size is None:
        idx = np.arange(start, start + n)
    else:
        if n > size:
            raise ValueError(f"{split} has {size} videos, asked for {n}")
        idx = np.sort(np.random.default_rng(seed).choice(size, n, replace=False))
    if hasattr(spec, "physics"):
        return spec.records(seed, split, idx)
    return spec.batch(seed, split, idx).records()


def _mp4(frames: np.ndarray, quality: int):
    from evals.inputs import decode_mp4_both
    from physim import video

    return decode_mp4_both(video.encode_mp4(frames, quality=quality))


def make_controls(spec, records, families, resolution: int) -> Iterator[Control]:
    """Every applicable ``families`` control of every record (in record order)."""
    rigid = hasattr(spec, "physics")
    for rec in records:
        for fam in families:
            if fam not in FAMILIES:
                raise ValueError(f"unknown control family {fam!r}; known: {list(FAMILIES)}")
            if rigid:
                out = scene_control(fam, rec, spec, resolution)
                if out is None:
                    continue
                frames, cond = out
            else:
                frames = disc_control(fam, rec, spec, resolution)
                cond = rec
                if frames is None:
                    continue
            truth = None if cond is rec else rec
            if fam in MP4_QUALITY:
                frames, luma = _mp4(frames, MP4_QUALITY[fam])
                yield Control(fam, frames, cond, luma, "lossy", truth)
            else:
                yield Control(fam, frames, cond, truth=truth)


def calibrate(scenario: str, n: int, resolution: int, *, seed: int = 0, split: str = "train",
              families=None, overrides: dict | None = None,
              progress: bool = False) -> dict:  # fmt: skip
    """Judge ``n`` truth videos of ``scenario`` under every control family.

    Returns:
      ``{"config": {...}, "rows": [per control video], "table": confusion(rows)}``.
    """
    import physim

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if resolution < 16 or resolution % 2:
        raise ValueError(f"resolution must be even and >= 16, got {resolution}")
    spec = physim.scenario(scenario, **(overrides or {}))
    laws = judge.laws_for(spec)
    fams = families_for(spec) if families is None else tuple(families)
    records = truth_records(spec, seed, split, n)
    rows = []
    for i, ctl in enumerate(make_controls(spec, records, fams, resolution)):
        v = judge.judge_video(ctl.frames, ctl.record, laws, config=ctl.preset, luma=ctl.luma,
                              truth=ctl.truth)
        p, f = v["plausibility"], v["fidelity"]
        rows.append({"family": ctl.family, "positive": ctl.positive, "id": ctl.record.id,
                     "implausible": not p["plausible"], "causes": p["causes"],
                     "unfaithful": not f["faithful"], "fidelity_causes": f["causes"],
                     "divergence_frame": f["divergence_frame"]})  # fmt: skip
        if progress and i % 50 == 0:
            print(f"{i} controls judged", flush=True)
    return {"config": {"scenario": scenario, "n": n, "resolution": resolution, "seed": seed,
                       "split": split, "families": list(fams), "laws": dataclasses.asdict(laws)},
            "rows": rows, "table": confusion(rows)}  # fmt: skip


def confusion(rows: list[dict]) -> dict:
    """Per family and per check flag rates of judged controls (rows of :func:`calibrate`).

    Returns:
      ``{"families": {family: {n, implausible, named, unfaithful, causes {check: rate}}},
      "checks": {check: {"tpr", "n_neg", "fpr", "n_pos"}}, "overall": {"fpr", "n_pos",
      "tpr", "n_neg", "named_tpr", "fidelity_fpr", "fidelity_tpr"}}``: ``named`` is the rate
      flagged by a check of :data:`EXPECTED`; a check's ``tpr`` is over the negatives it
      names, its ``fpr`` over all positives.
    """
    fam_rows: dict[str, list[dict]] = {}
    for r in rows:
        fam_rows.setdefault(r["family"], []).append(r)
    fams = {}
    for fam in [f for f in FAMILIES if f in fam_rows]:
        rs = fam_rows[fam]
        causes: dict[str, float] = {}
        for r in rs:
            for ch in r["causes"]:
                causes[ch] = causes.get(ch, 0.0) + 1.0 / len(rs)
        want = EXPECTED.get(fam, ())
        fams[fam] = {
            "n": len(rs), "positive": fam in POSITIVE,
            "implausible": float(np.mean([r["implausible"] for r in rs])),
            "named": (float(np.mean([bool(set(r["causes"]) & set(want)) for r in rs]))
                      if want else None),
            "unfaithful": float(np.mean([r["unfaithful"] for r in rs])),
            "causes": dict(sorted(causes.items())),
        }  # fmt: skip
    pos = [r for r in rows if r["positive"]]
    neg = [r for r in rows if not r["positive"]]
    checks = {}
    for ch in judge.CHECKS + ("friction",):
        named = [r for r in neg if ch in EXPECTED.get(r["family"], ())]
        by_fam: dict[str, list[bool]] = {}
        for r in named:
            by_fam.setdefault(r["family"], []).append(ch in r["causes"])
        checks[ch] = {
            "tpr": float(np.mean([ch in r["causes"] for r in named])) if named else None,
            "n_neg": len(named),
            "tpr_by_family": {f: float(np.mean(v)) for f, v in by_fam.items()},
            "fpr": float(np.mean([ch in r["causes"] for r in pos])) if pos else None,
            "n_pos": len(pos),
        }

    def rate(rs, key):
        return float(np.mean([r[key] for r in rs])) if rs else None

    overall = {
        "fpr": rate(pos, "implausible"), "n_pos": len(pos),
        "tpr": rate(neg, "implausible"), "n_neg": len(neg),
        "named_tpr": (float(np.mean([bool(set(r["causes"]) & set(EXPECTED[r["family"]]))
                                     for r in neg])) if neg else None),
        "fidelity_fpr": rate(pos, "unfaithful"), "fidelity_tpr": rate(neg, "unfaithful"),
    }  # fmt: skip
    return {"families": fams, "checks": checks, "overall": overall}


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def confusion_markdown(result: dict) -> str:
    """Markdown tables of a :func:`calibrate` result."""
    cfg, tab = result["config"], result["table"]
    lines = [f"## Judge calibration: {cfg['scenario']}, {cfg['n']} truths, {cfg['resolution']} px"
             f" (split {cfg['split']}, seed {cfg['seed']})", "",
             "| control | kind | n | flagged implausible | by the named check | unfaithful "
             "| causes |", "|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for fam, s in tab["families"].items():
        causes = ", ".join(f"{c} {_pct(v)}" for c, v in s["causes"].items()) or "–"
        kind = "positive" if s["positive"] else "negative"
        lines.append(f"| {fam} | {kind} | {s['n']} | {_pct(s['implausible'])} | "
                     f"{_pct(s['named'])} | {_pct(s['unfaithful'])} | {causes} |")  # fmt: skip
    lines += ["", "| check | FPR (positives) | n | TPR on the negatives it names (per family) |",
              "|---|---:|---:|---|"]  # fmt: skip
    for ch, s in tab["checks"].items():
        if s["n_neg"] or (s["fpr"] or 0) > 0:
            tpr = ", ".join(f"{f} {_pct(v)}" for f, v in s["tpr_by_family"].items()) or "–"
            lines.append(f"| {ch} | {_pct(s['fpr'])} | {s['n_pos']} | {tpr} |")
    o = tab["overall"]
    lines += ["", f"Overall: positives flagged implausible {_pct(o['fpr'])} of {o['n_pos']}; "
              f"negatives flagged {_pct(o['tpr'])} of {o['n_neg']} (by the named check "
              f"{_pct(o['named_tpr'])}); fidelity: positives unfaithful "
              f"{_pct(o['fidelity_fpr'])}, negatives unfaithful {_pct(o['fidelity_tpr'])}.", ""]
    return "\n".join(lines)
