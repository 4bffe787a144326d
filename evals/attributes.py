"""Attribute priority (the paper's §5.3 pairwise experiments) and attribute vectors.

In a pairwise experiment two attributes A and B take two values each; training shows
(a0, b0) and (a1, b1), the test set the swapped (a0, b1) and (a1, b0). For each test video
we measure, over the generated frames, the object's colour, shape, size and velocity, and
call an attribute *kept* when the measurement is closer to the conditioned value than to
the other value of the pair (for a size or speed interval, than to the nearest point of
the other interval). One attribute kept and the other changed means the kept one has
priority. :func:`priority` counts outcomes per pair and orders attributes by wins.

Colours: the object is parsed with candidate colours (its own plus the pair's other
colour, see :func:`candidate_colors`) so that a colour change is measured, not lost.
"""

from __future__ import annotations

import numpy as np

from physim import world

ATTRS = ("color", "shape", "size", "velocity")


def pair_spec(scenario: str) -> dict | None:
    """The pair definition (a, b, a_values, b_values) of an attribute scenario, else None."""
    try:
        from physim.scenarios.attributes import PAIRS
    except ImportError:  # pragma: no cover - scenarios always ship with physim
        return None
    return PAIRS.get(scenario)


def candidate_colors(record) -> list[str]:
    """Colour names to parse with: the objects' own, then the pair's other colours."""
    names = list(record.objects.colors)
    spec = pair_spec(record.scenario)
    if spec is not None:
        for attr, values in (("a", spec["a_values"]), ("b", spec["b_values"])):
            if spec[attr] == "color":
                names += [c for c in values if c not in names]
    return names


def _gen_frames(tracks, record, i: int = 0) -> np.ndarray:
    k = np.arange(tracks.n_frames) >= record.n_cond
    return k & tracks.in_view[:, i]


def measure(tracks, record, names: list[str] | None = None) -> dict:
    """Colour, shape, size and velocity of object 0 over the generated frames.

    ``tracks`` must be parsed with ``names`` (default :func:`candidate_colors`) colours in
    that order; the colour is the candidate with the most area, the rest is read from its
    track. Values are NaN / "" when the object is never in view.
    """
    names = candidate_colors(record) if names is None else names
    k = np.arange(tracks.n_frames) >= record.n_cond
    area = np.where(k[:, None] & tracks.visible, tracks.areas, 0.0).sum(axis=0)
    if area.max() <= 0:
        return {"color": "", "shape": "", "size": np.nan, "velocity": np.nan}
    c = int(np.argmax(area))
    view = k & tracks.in_view[:, c]
    shapes = tracks.shapes[view, c]
    shape = world.SHAPES[int(np.bincount(shapes[shapes >= 0]).argmax())] if shapes.size else ""
    size = float(np.nanmedian(tracks.radii[view, c])) if view.any() else np.nan
    pos = tracks.positions[:, c]
    both = view[1:] & view[:-1]
    v = np.diff(pos, axis=0)[both] / world.FRAME_DT
    speed = float(np.mean(np.linalg.norm(v, axis=-1))) if len(v) else np.nan
    return {"color": names[c], "shape": shape, "size": size, "velocity": speed}


def _kept(attr: str, measured, conditioned, other) -> bool | None:
    """Whether ``measured`` is closer to the conditioned value than to the other one."""
    if attr in ("color", "shape"):
        if measured == "":
            return None
        return measured == conditioned
    if not np.isfinite(measured):
        return None
    lo, hi = other
    d_other = 0.0 if lo <= measured <= hi else min(abs(measured - lo), abs(measured - hi))
    return abs(measured - conditioned) < d_other


def video_attributes(tracks, record, names: list[str] | None = None) -> dict:
    """Per-video outcome of a pairwise attribute experiment (empty for other scenarios).

    Returns ``attr_a``, ``attr_b`` (names), ``kept_a``, ``kept_b`` (bools) and the measured
    values ``measured_{color,shape,size,velocity}``.
    """
    spec = pair_spec(record.scenario)
    if spec is None:
        return {}
    m = measure(tracks, record, names)
    i, j = int(record.params.get("a_idx", 0)), int(record.params.get("b_idx", 0))
    truth = {
        "color": record.objects.colors[0],
        "shape": record.objects.shapes[0],
        "size": float(record.objects.radii[0]),
        "velocity": float(np.linalg.norm(record.trajectory.velocities[0, 0])),
    }
    out = {"attr_a": spec["a"], "attr_b": spec["b"]}
    for side, attr, values, idx in (("a", spec["a"], spec["a_values"], i),
                                    ("b", spec["b"], spec["b_values"], j)):  # fmt: skip
        kept = _kept(attr, m[attr], truth[attr], values[1 - idx])
        out[f"kept_{side}"] = kept
    out.update({f"measured_{k}": v for k, v in m.items()})
    return out


def priority(rows: list[dict]) -> dict:
    """Aggregate per-video outcomes into pairwise counts and an attribute order.

    Counts use keys ``"A>B"`` (A kept, B changed), ``"A=B kept"`` and ``"A=B changed"``;
    the order ranks attributes by pairwise wins (ties by fewer losses).
    """
    counts: dict[str, int] = {}
    wins = {a: 0 for a in ATTRS}
    losses = {a: 0 for a in ATTRS}
    seen = set()
    for r in rows:
        if r.get("split") == "id" or "attr_a" not in r:
            continue
        a, b, ka, kb = r["attr_a"], r["attr_b"], r.get("kept_a"), r.get("kept_b")
        if ka is None or kb is None:
            continue
        seen.update((a, b))
        if ka and not kb:
            key = f"{a}>{b}"
        elif kb and not ka:
            key = f"{b}>{a}"
        else:
            key = f"{a}={b} {'kept' if ka else 'changed'}"
        counts[key] = counts.get(key, 0) + 1
    pairs = {tuple(sorted(k.split(">"))) for k in counts if ">" in k}
    for x, y in sorted(pairs):
        n_xy, n_yx = counts.get(f"{x}>{y}", 0), counts.get(f"{y}>{x}", 0)
        if n_xy != n_yx:
            w, l_ = (x, y) if n_xy > n_yx else (y, x)
            wins[w] += 1
            losses[l_] += 1
    order = sorted((a for a in ATTRS if a in seen), key=lambda a: (-wins[a], losses[a]))
    return {"counts": dict(sorted(counts.items())), "order": order, "wins": wins}


# --------------------------------------------------------------------------- vectors


def truth_attributes(record) -> dict:
    """Attribute vector of a truth video: per object radius, velocity, colour, shape.

    The velocity is measured like :func:`parsed_attributes` does on generated frames: the
    mean finite-difference velocity over generated frames in view (initial velocity if none).
    """
    from evals.laws import frame_velocities, valid_frames

    v = frame_velocities(record.trajectory.positions)
    ok = valid_frames(record)
    vel = np.array(record.trajectory.velocities[0], dtype=np.float64)
    for i in range(vel.shape[0]):
        if ok[:, i].any():
            vel[i] = v[ok[:, i], i].mean(axis=0)
    return {
        "radius": np.asarray(record.objects.radii, dtype=np.float64),
        "velocity": vel,
        "color": tuple(record.objects.colors),
        "shape": tuple(record.objects.shapes),
    }


def parsed_attributes(tracks, record) -> dict:
    """The same vector measured on generated frames (median radius, mean velocity)."""
    n = tracks.n_objects
    radius = np.full(n, np.nan)
    vel = np.full((n, 2), np.nan)
    shape = []
    for i in range(n):
        view = _gen_frames(tracks, record, i)
        if view.any():
            radius[i] = np.nanmedian(tracks.radii[view, i])
        both = view[1:] & view[:-1]
        if both.any():
            vel[i] = np.mean(np.diff(tracks.positions[:, i], axis=0)[both], axis=0)
            vel[i] /= world.FRAME_DT
        s = tracks.shapes[view, i]
        s = s[s >= 0]
        shape.append(world.SHAPES[int(np.bincount(s).argmax())] if s.size else "")
    return {"radius": radius, "velocity": vel, "color": tuple(record.objects.colors),
            "shape": tuple(shape)}  # fmt: skip
