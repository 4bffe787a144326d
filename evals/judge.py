"""An automatic physics judge: two verdicts per video, each with named causes.

- **fidelity** (:func:`fidelity_discs`, :func:`fidelity_scene`): does the video match the
  truth simulated from the same initial state? Position and velocity deviation over time
  and the first divergence frame. Uses the truth record.
- **plausibility** (:func:`plausibility_discs`, :func:`plausibility_scene`): could a world
  with the scenario's laws (:class:`Laws`: gravity, restitution, density, start from rest)
  produce it? Judged from the generated frames and the conditioning frames only, never
  from the truth's later states. This is what a human rater answers.

Plausibility checks of disc scenes (parsed :class:`evals.parse.Tracks`, generated frames
``k >= n_cond``; object sizes, shapes, colours and velocities come from the conditioning
frames; a disc's mass is ``density * pi * r**2`` of its parsed radius):

- ``vanish`` / ``appear``: an object disappears while it could not have left the box in one
  frame, or shows up inside the box without entering through a border; an unknown colour.
- ``color`` / ``shape`` / ``size``: identity drifts from the conditioning frames (a colour
  changes or two objects swap, the shape label and moment change, the radius drifts).
- ``interpenetration``: two discs' centres closer than a fraction of their radii sum.
- ``inertia``: the velocity at the start of the generated frames, in free motion, differs
  from the velocity the conditioning frames show (frozen, slowed, reversed).
- ``acceleration``: in free flight (no contact) the fitted constant acceleration differs
  from gravity, or the motion is not one constant acceleration (a kink, a stop).
- ``teleport``: a one-frame step beyond what the conditioning frames' energy allows.
- ``momentum`` / ``energy``: at a contact of two discs, total momentum changes, or the
  restitution along the line of centres is not the scenario's.

Rigid (combinatorial) scenes add, on connected blobs of each dynamic colour tracked over
frames (:mod:`evals.scene_parse`), to the pixel checks of :mod:`evals.scene_checks`
(``vanish``, ``appear``, ``color``, ``shape``, ``static``, ``pass_through`` (their
``penetration``), ``teleport`` (their ``jump``)):

- ``unsupported``: a dynamic body at rest over three frames that no chain of contacts
  joins to a static body or the box (a frozen scene with an object in mid-air, or a bar
  and the ball on it resting on each other in mid-air).
- ``acceleration``: a body in free flight (clear of everything by more than it moves) whose
  fitted acceleration is not gravity.
- ``spontaneous``: from rest, a body moves farther than free fall allows in the first
  frames, or rises from rest later with nothing moving next to it.
- ``energy``: a body bounces back up faster than restitution allows (vertical rebound
  ratio above ``e + energy_tol``) or leaves a contact faster than it came.
- ``friction`` (worlds with friction): a body that cannot roll (a blob whose area and
  elongation match only bars, sticks or hollow jars of its colour, no ball) glides along a
  support, in contact, level, without turning and at constant speed, where Coulomb
  friction would stop it at ``mu g``.

All scoring functions are pure (arrays in, dicts out); :func:`judge_video` parses and
scores one video; the CLI (``python -m evals.judge score|calibrate``) reads and writes
files. Units: world units (the box is [0, 10]²), seconds; pixels only inside the scene
checks.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from physim import world

DISC_CHECKS = ("vanish", "appear", "color", "shape", "size", "interpenetration", "inertia",
               "acceleration", "teleport", "momentum", "energy")  # fmt: skip
SCENE_CHECKS = ("vanish", "appear", "color", "shape", "static", "pass_through", "teleport",
                "unsupported", "acceleration", "spontaneous", "energy", "friction")  # fmt: skip
CHECKS = tuple(dict.fromkeys(DISC_CHECKS + SCENE_CHECKS))
FIDELITY_CAUSES = ("position", "velocity", "missing", "extra")
_SCENE_NAMES = {"penetration": "pass_through", "jump": "teleport"}  # scene_checks -> ours


# --------------------------------------------------------------------------- laws, config


@dataclasses.dataclass(frozen=True)
class Laws:
    """The laws a plausible video must obey (the scenario's parameters, not the truth's).

    Attributes:
      gravity: (gx, gy) world units / s².
      restitution: disc-disc (or body-body) coefficient of restitution in [0, 1].
      density: mass per unit area (mass = density * pi * r² for discs).
      friction: Coulomb friction of contacts (rigid scenes; informational).
      from_rest: every body starts at rest (combinatorial scenes, one conditioning frame).
      dt: seconds between frames.
    """

    gravity: tuple[float, float] = (0.0, 0.0)
    restitution: float = 1.0
    density: float = world.DENSITY
    friction: float = 0.0
    from_rest: bool = False
    dt: float = world.FRAME_DT

    @property
    def g(self) -> np.ndarray:
        return np.asarray(self.gravity, dtype=np.float64)


def laws_for(spec) -> Laws:
    """The :class:`Laws` of a scenario spec (a disc scenario or the combinatorial one)."""
    phys = getattr(spec, "physics", None)
    if phys is not None:  # rigid scenes (combinatorial)
        return Laws(gravity=tuple(map(float, phys.gravity)), restitution=float(phys.restitution),
                    density=float(phys.density), friction=float(phys.friction),
                    from_rest=True, dt=float(spec.dt))  # fmt: skip
    if not hasattr(spec, "gravity"):
        raise ValueError(f"{type(spec).__name__} has no physical laws to judge against")
    return Laws(gravity=tuple(map(float, spec.gravity)), restitution=float(spec.restitution),
                dt=float(spec.dt))  # fmt: skip


def laws_of_record(record, spec=None) -> Laws:
    """Laws of the scenario a record belongs to: ``spec`` (e.g. ``Dataset.spec``) if given,
    else the registered scenario's defaults. Never the record's own physics constants."""
    import physim

    return laws_for(spec if spec is not None else physim.scenario(record.scenario))


def is_scene(record) -> bool:
    """Whether a record is a rigid multi-body scene (judged by the scene checks)."""
    return bool(record.extra.get("bodies"))


@dataclasses.dataclass(frozen=True)
class JudgeConfig:
    """Tolerances of the judge (world units, seconds, unless px).

    Attributes:
      parse: parse preset of :mod:`evals.parse` / :mod:`evals.scenes` (``exact``, ``lossy``).
      min_frames: frames an identity deviation (shape, size) must persist.
      shape_tol, size_tol: log shape-moment change and relative radius drift allowed.
      area_lost, unknown_area: colour change: area an object loses (fraction) while an
        unknown colour shows (fraction of the smallest object's area).
      overlap: centres closer than ``overlap * (r_i + r_j)`` interpenetrate.
      contact_margin: two discs closer than their steps plus this are in contact.
      inertia_frames: generated frames the start velocity is fitted on.
      inertia_abs, inertia_rel: allowed |v_start - v_cond| = abs + rel * |v_cond| (units/s).
      fit_min: frames a free-flight fit needs.
      acc_tol: allowed |a_fit - g| of discs (units / s²); ``acc_tol_scene`` of rigid bodies.
      resid_tol: allowed largest residual of a free-flight fit (units).
      jump_factor, jump_tol: a step beyond ``jump_factor * v_max * dt + jump_tol`` teleports.
      mom_tol: allowed |Δp| / Σ m|v| at a contact.
      e_tol: allowed |e_measured - e| at a disc contact; ``min_closing``: slower contacts
        (units/s) are not judged.
      fit_frames: frames before / after a contact its velocities are fitted on.
      pos_tol, vel_tol: fidelity: position deviation (units) that is a divergence, mean
        velocity deviation (units/s) allowed.
      rest_tol: a rigid body moving less per frame is at rest (units).
      support_px: clearance (px) under which a rigid body touches something.
      free_margin, free_reach: a rigid body is in free flight over an interval when its
        clearance (units) at both ends exceeds ``free_reach`` times its step plus
        ``free_margin``.
      energy_tol: allowed vertical rebound ratio above ``e``; ``min_impact``: slower impacts
        (units/s) are not judged; a body leaving a contact upward at ``v_up > min_launch``
        needs ``v_up <= (e + energy_tol) v_in + launch_tol``, ``v_in`` its speed coming in.
      merge_area: launches, rises from rest and the first falls from rest are not judged
        over frames where the body's blob changes area by more than this (log): two bodies
        of one colour merging or parting move the blob's centroid without any body moving.
      from_rest_frames, from_rest_slack, from_rest_tol: the first frames from rest where a
        body's displacement may be at most ``(1 + slack) g t²/2 + tol``; a body touching
        nothing must have fallen ``g t²/2`` within ``free_fall_slack`` of it plus ``tol``.
      jump_neighbour, scene_jump: a body of a colour of its own teleports when one frame's
        step exceeds ``jump_neighbour`` times its neighbouring steps plus ``scene_jump``.
      rise_tol: a body at rest that rises more than this in one frame moves spontaneously,
        unless another body moving at ``push`` times its new speed touched it just before
        (``push`` also excuses launches).
      link_area: blobs of consecutive frames are one body when log areas differ by less.
      com_rise: a rigid scene released from rest whose dynamic pixels' centre of mass
        rises more than this above where it started (units) gained energy; frames whose
        dynamic area differs from the first frame's by more than ``com_area`` (fraction)
        are not read (a vanished or appeared body is the vanish and appear checks').
      glide_frames, glide_windows: a glide is ``glide_windows`` consecutive windows of
        ``glide_frames`` intervals each, over which a chain is present, touches something
        (clearance <= ``support_px``), keeps its area (``merge_area``), its elongation
        (ratio <= ``glide_shape``) and its axis (turns <= ``glide_turn`` rad), moves level
        (rises or falls at most ``glide_rise`` times its horizontal travel) at
        ``glide_speed`` units/s or faster with a fitted horizontal acceleration below
        ``glide_accel`` units/s² (friction decelerates a slide at ``mu g``: 6.4 in the
        PHYRE-like scenes); only chains whose area and elongation match (log,
        ``glide_area``) bodies of their colour none of which can roll (a ball rolls
        freely: convex and less than ``glide_elong`` elongated; jars are hollow).
        ``glide_skew``: a blob whose skew (``SceneTracks.skew``) exceeds this is no ball
        (discs read at most 0.035 at 128 px, jars 0.07-0.32), and a round one (less than
        ``glide_elong`` elongated: a jar) turns as its skew's direction turns (its major
        axis is noise there).
      hold_frames, hold_min, hold_move: a ball whose supports are all tilted (``SceneTracks.
        tilt`` > 0) over ``hold_frames`` intervals must roll at least ``d = (5/7) g
        sin(tilt) t² / 2`` over them; where ``d >= hold_min`` (units) and it moves less than
        ``hold_move * d``, it is ``unsupported`` (a frozen ball on a slope or a rim).
      hop_fit, hop_min_px, hop_frac, hop_clear, hop_dt: a ball landing on the floor, fitted
        in free flight over the ``hop_fit`` frames before (touching nothing), must hop back
        up at restitution times its impact speed; where that hop, with the impact up to
        ``hop_dt`` seconds earlier or later than the fit says (pymunk resolves an impact
        over a few 5 ms steps), is still at least ``hop_min_px`` high at some frame time
        and the ball rises less than ``hop_frac`` of it, the landing is dead (``energy``:
        it lost more than the law allows). Judged only where nothing but the floor comes
        within ``hop_clear`` px of the ball from the frame before the landing until the
        hop is over.
    """

    parse: str = "exact"
    min_frames: int = 2
    shape_tol: float = 0.02
    size_tol: float = 0.15
    area_lost: float = 0.5
    unknown_area: float = 0.3
    overlap: float = 0.7
    contact_margin: float = 0.1
    inertia_frames: int = 6
    inertia_abs: float = 0.15
    inertia_rel: float = 0.1
    fit_min: int = 6
    acc_tol: float = 0.6
    acc_tol_scene: float = 3.0
    resid_tol: float = 0.08
    jump_factor: float = 2.0
    jump_tol: float = 0.3
    mom_tol: float = 0.15
    e_tol: float = 0.25
    min_closing: float = 0.3
    fit_frames: int = 6
    pos_tol: float = 0.25
    vel_tol: float = 0.3
    rest_tol: float = 0.02
    support_px: float = 1.5
    free_margin: float = 0.1
    free_reach: float = 1.0
    energy_tol: float = 0.35
    min_impact: float = 1.5
    min_launch: float = 1.0
    launch_tol: float = 0.5
    merge_area: float = 0.08
    from_rest_frames: int = 3
    from_rest_slack: float = 0.5
    free_fall_slack: float = 0.3
    from_rest_tol: float = 0.05
    jump_neighbour: float = 3.0
    scene_jump: float = 0.5
    rise_tol: float = 0.08
    push: float = 0.3
    link_area: float = 0.25
    com_rise: float = 0.25
    com_area: float = 0.2
    glide_frames: int = 4
    glide_windows: int = 2
    glide_speed: float = 0.5
    glide_accel: float = 0.5
    glide_rise: float = 0.1
    glide_turn: float = 0.06
    glide_shape: float = 1.1
    glide_area: float = 0.15
    glide_elong: float = 1.3
    glide_skew: float = 0.06
    hold_frames: int = 8
    hold_min: float = 0.3
    hold_move: float = 0.25
    hop_fit: int = 3
    hop_min_px: float = 1.0
    hop_frac: float = 0.4
    hop_clear: float = 3.0
    hop_dt: float = 0.02


JUDGE_PRESETS: dict[str, JudgeConfig] = {
    "exact": JudgeConfig(),
    "lossy": JudgeConfig(parse="lossy", min_frames=3, shape_tol=0.03, size_tol=0.2,
                         unknown_area=0.5, inertia_abs=0.25, acc_tol=0.8, acc_tol_scene=4.0,
                         resid_tol=0.12, rest_tol=0.03, support_px=2.5,
                         from_rest_tol=0.08),  # fmt: skip
}


def resolve_config(config) -> JudgeConfig:
    """A :class:`JudgeConfig` from an instance or a preset name (ValueError otherwise)."""
    if isinstance(config, JudgeConfig):
        return config
    try:
        return JUDGE_PRESETS[config]
    except (KeyError, TypeError):
        raise ValueError(f"unknown judge preset {config!r}; known: {list(JUDGE_PRESETS)}") from None


# --------------------------------------------------------------------------- helpers


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of True in a (T,) bool array."""
    out, start = [], None
    for k, m in enumerate(np.append(mask, False)):
        if m and start is None:
            start = k
        elif not m and start is not None:
            out.append((start, k))
            start = None
    return out


def _longest_run(mask: np.ndarray) -> int:
    return max((b - a for a, b in _runs(mask)), default=0)


def fit_motion(t: np.ndarray, x: np.ndarray, t_ref: float, accel=None):
    """Least-squares constant-acceleration fit of positions ``x (K, 2)`` at times ``t (K,)``.

    Args:
      accel: fixed acceleration (2,) units/s², or None to fit it (needs K >= 3).

    Returns:
      ``(p, v, a, resid)``: position (2,) and velocity (2,) at ``t_ref``, acceleration (2,),
      largest residual norm (units). NaNs when too few points.
    """
    t = np.asarray(t, dtype=np.float64) - t_ref
    x = np.asarray(x, dtype=np.float64)
    nan = np.full(2, np.nan)
    if accel is None:
        if len(t) < 3:
            return nan, nan, nan, np.nan
        a_mat = np.stack([np.ones_like(t), t, 0.5 * t**2], axis=1)
        coef, *_ = np.linalg.lstsq(a_mat, x, rcond=None)
        p, v, a = coef
    else:
        if len(t) < 2:
            return nan, nan, nan, np.nan
        a = np.asarray(accel, dtype=np.float64)
        a_mat = np.stack([np.ones_like(t), t], axis=1)
        coef, *_ = np.linalg.lstsq(a_mat, x - 0.5 * t[:, None] ** 2 * a, rcond=None)
        p, v = coef
    pred = p + t[:, None] * v + 0.5 * t[:, None] ** 2 * a
    return p, v, a, float(np.max(np.linalg.norm(pred - x, axis=-1)))


def _verdict(checks: dict, names, stats: dict) -> dict:
    checks = {c: bool(checks.get(c, False)) for c in names}
    causes = [c for c in names if checks[c]]
    return {"plausible": not causes, "causes": causes, "checks": checks, "stats": stats}


# --------------------------------------------------------------------------- discs


@dataclasses.dataclass(frozen=True)
class CondState:
    """What the conditioning frames show of N discs.

    Attributes:
      radius: (N,) parsed radius (units), NaN if never fully in view.
      area: (N,) parsed area (units²).
      shape: (N,) parsed shape code (-1 unknown); moment: (N,) shape moment.
      mass: (N,) ``density * pi * radius²``.
      velocity: (N, 2) units/s at the last conditioning frame (NaN if unknown).
      rough: (N,) bool, velocity read from a partly visible object (border-clipped).
      n_cond: conditioning frames.
    """

    radius: np.ndarray
    area: np.ndarray
    shape: np.ndarray
    moment: np.ndarray
    mass: np.ndarray
    velocity: np.ndarray
    rough: np.ndarray
    n_cond: int


def cond_state(tracks, n_cond: int, laws: Laws, fallback_radii=None) -> CondState:
    """Read :class:`CondState` from the first ``n_cond`` frames of ``tracks`` (T, N).

    ``fallback_radii`` (N,) is used for objects not fully in view in any conditioning frame.
    """
    n = tracks.n_objects
    c = n_cond - 1
    cond = np.arange(tracks.n_frames) < n_cond
    rad, area, shp, mom = (np.full(n, np.nan) for _ in range(4))
    vel = np.full((n, 2), np.nan)
    rough = np.zeros(n, bool)
    t = np.arange(tracks.n_frames) * laws.dt
    for i in range(n):
        m = cond & tracks.in_view[:, i]
        if m.any():
            rad[i] = np.median(tracks.radii[m, i])
            area[i] = np.median(tracks.areas[m, i])
            mom[i] = np.median(tracks.moments[m, i])
            s = tracks.shapes[m, i]
            shp[i] = np.bincount(s[s >= 0]).argmax() if np.any(s >= 0) else -1
        elif fallback_radii is not None:
            rad[i] = float(fallback_radii[i])
        seen = cond & tracks.visible[:, i]
        if m.sum() >= 2 and m[c]:
            _, vel[i], _, _ = fit_motion(t[m], tracks.positions[m, i], t[c], laws.g)
        elif seen.sum() >= 2 and seen[c]:  # touching the border: the visible part's centroid
            _, vel[i], _, _ = fit_motion(t[seen], tracks.positions[seen, i], t[c], laws.g)
            rough[i] = True
        elif laws.from_rest and n_cond == 1:
            vel[i] = 0.0
    return CondState(radius=rad, area=area, shape=np.nan_to_num(shp, nan=-1).astype(int),
                     moment=mom, mass=laws.density * np.pi * rad**2, velocity=vel,
                     rough=rough, n_cond=int(n_cond))  # fmt: skip


def _contacts(tracks, radius: np.ndarray, margin: float):
    """Per pair (i, j): (T-1,) bool, interval k-1 -> k may hold a contact."""
    pos, vis = tracks.positions, tracks.visible
    step = np.nan_to_num(np.linalg.norm(np.diff(pos, axis=0), axis=-1))  # (T-1, N)
    # A bounce inside an interval shortens its net step: bound the travel by the steps of
    # the neighbouring intervals too.
    pad = np.pad(step, ((1, 1), (0, 0)))
    step = np.maximum(np.maximum(pad[:-2], pad[1:-1]), pad[2:])
    out = {}
    for i, j in itertools.combinations(range(tracks.n_objects), 2):
        both = vis[1:, i] & vis[:-1, i] & vis[1:, j] & vis[:-1, j]
        gap = np.linalg.norm(pos[:, i] - pos[:, j], axis=-1) - (radius[i] + radius[j])
        with np.errstate(invalid="ignore"):
            g0 = np.minimum(gap[:-1], gap[1:])
            out[(i, j)] = both & (g0 <= step[:, i] + step[:, j] + margin)
    return out


def plausibility_discs(tracks, n_cond: int, laws: Laws, config="exact", fallback_radii=None
                       ) -> dict:  # fmt: skip
    """Plausibility of one parsed disc video (see the module doc for the checks).

    Args:
      tracks: :class:`evals.parse.Tracks` (T frames, N objects) of the whole video.
      n_cond: conditioning frames (their content is what the model was given).
      laws: the scenario's :class:`Laws`.
      config: :class:`JudgeConfig` or preset name.
      fallback_radii: (N,) radii for objects never fully in view while conditioning.

    Returns:
      ``{"plausible", "causes" (names, in :data:`DISC_CHECKS` order), "checks" {name: bool},
      "stats" {numbers behind them}}``.
    """
    cfg = resolve_config(config)
    n_t, n = tracks.n_frames, tracks.n_objects
    if not 1 <= n_cond < n_t:
        raise ValueError(f"n_cond must be in [1, {n_t}), got {n_cond}")
    cs = cond_state(tracks, n_cond, laws, fallback_radii)
    c = n_cond - 1
    t = np.arange(n_t) * laws.dt
    gen = np.arange(n_t) >= n_cond
    pos, vis, inv = tracks.positions, tracks.visible, tracks.in_view
    own = ~tracks.shared_color  # group centroids of shared colours say nothing per object
    r = np.where(np.isfinite(cs.radius), cs.radius, 0.0)
    g = laws.g
    ck: dict[str, bool] = {}
    st: dict[str, float] = {}
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1)  # (T-1, N)
    # Energy bound on speeds, from the conditioning frames: kinetic plus a fall of the box.
    v0 = np.nan_to_num(np.linalg.norm(cs.velocity, axis=-1))
    m = np.where(np.isfinite(cs.mass) & (cs.mass > 0), cs.mass, np.nanmax(cs.mass, initial=1.0))
    energy = 0.5 * float(np.sum(m * v0**2)) + float(m.sum()) * float(np.linalg.norm(g)) * (
        world.WORLD_SIZE + 2 * r.max(initial=0.0))
    v_max = np.sqrt(2.0 * energy / m)  # (N,)
    if not np.all(np.isfinite(cs.velocity)):  # an unknown speed bounds nothing
        v_max = np.full(n, np.inf)

    # Permanence: gone while deep inside, or there without having come in.
    dist = np.minimum(np.minimum(pos[..., 0], world.WORLD_SIZE - pos[..., 0]),
                      np.minimum(pos[..., 1], world.WORLD_SIZE - pos[..., 1]))  # fmt: skip
    reach = np.vstack([np.zeros((1, n)), np.nan_to_num(step)])  # (T, N) last step
    vanish = np.zeros(n, bool)
    appear = np.zeros(n, bool)
    for k in range(n_cond, n_t):
        lost = own & inv[k - 1] & ~vis[k]
        could_leave = dist[k - 1] + r <= 1.5 * reach[k - 1] + cfg.contact_margin
        vanish |= lost & ~could_leave
        came = own & ~vis[k - 1] & inv[k]
        appear |= came & (dist[k] - r > cfg.jump_factor * v_max * laws.dt + cfg.jump_tol)
    min_area = float(np.nanmin(np.pi * cs.radius**2, initial=np.inf)) if n else np.inf
    min_area = min_area if np.isfinite(min_area) else 0.0
    ref_area = np.where(np.isfinite(cs.area), cs.area, np.pi * r**2)
    lost_area = gen[:, None] & inv & (tracks.areas < (1 - cfg.area_lost) * ref_area)
    gone = gen[:, None] & ~vis & np.isfinite(cs.area)  # (an object lost all its area)
    unknown = gen & (tracks.unknown_area > cfg.unknown_area * min_area)
    recolor = unknown & (lost_area | gone).any(axis=1)
    ck["vanish"] = bool(vanish.any())
    ck["appear"] = bool(appear.any() or np.any(unknown & ~recolor))
    st["unknown_area_max"] = float(np.max(tracks.unknown_area[gen], initial=0.0))

    # Identity: colour changes and swaps (a track lands on another's last spot), shape, size.
    swapped = False
    for k in np.nonzero(gen)[0]:
        for i, j in itertools.permutations(range(n), 2):
            if not (vis[k, i] and vis[k - 1, i] and vis[k - 1, j] and own[i] and own[j]):
                continue
            d_own = np.linalg.norm(pos[k, i] - pos[k - 1, i])
            d_other = np.linalg.norm(pos[k, i] - pos[k - 1, j])
            swapped |= bool(d_own > max(r[i], cfg.jump_tol) and d_other < 0.5 * d_own)
    ck["color"] = bool(recolor.any() or swapped)
    shape_bad = size_bad = False
    drift = 0.0
    for i in range(n):
        if not np.isfinite(cs.area[i]):
            continue
        view = gen & inv[:, i]
        with np.errstate(invalid="ignore", divide="ignore"):
            moved = np.abs(np.log(tracks.moments[:, i] / cs.moment[i])) > cfg.shape_tol
            rel = np.abs(np.sqrt(tracks.areas[:, i] / cs.area[i]) - 1.0)
        changed = (tracks.shapes[:, i] != cs.shape[i]) & moved
        shape_bad |= _longest_run(view & changed) >= cfg.min_frames
        size_bad |= _longest_run(view & (rel > cfg.size_tol)) >= cfg.min_frames
        drift = max(drift, float(np.max(rel[view], initial=0.0)))
    ck["shape"], ck["size"] = bool(shape_bad), bool(size_bad)
    st["size_drift_max"] = drift

    # Interpenetration.
    gap_min = np.inf
    for i, j in itertools.combinations(range(n), 2):
        k = gen & inv[:, i] & inv[:, j]
        if k.any() and r[i] + r[j] > 0:
            d = np.linalg.norm(pos[k, i] - pos[k, j], axis=-1) / (r[i] + r[j])
            gap_min = min(gap_min, float(d.min()))
    ck["interpenetration"] = bool(gap_min < cfg.overlap)
    st["min_center_gap"] = gap_min if np.isfinite(gap_min) else float("nan")

    # Teleports.
    both = vis[1:] & vis[:-1] & gen[1:, None] & own
    allowed = cfg.jump_factor * v_max * laws.dt + cfg.jump_tol
    ratio = np.where(both, np.nan_to_num(step) / allowed, 0.0)
    ck["teleport"] = bool(np.any(ratio > 1.0))
    st["jump_ratio_max"] = float(np.max(ratio, initial=0.0))

    # Free motion: intervals with no possible contact, both frames fully in view.
    contacts = _contacts(tracks, r, cfg.contact_margin)
    free = inv[1:] & inv[:-1] & own  # (T-1, N): interval k -> k+1 at row k
    for (i, j), close in contacts.items():
        free[:, i] &= ~close
        free[:, j] &= ~close
    inertia_dv, acc_dev, resid_max = 0.0, 0.0, 0.0
    inertia = accel = False
    for i in range(n):
        # Inertia: the generated motion right after the conditioning frames.
        v_c = cs.velocity[i]
        if np.all(np.isfinite(v_c)) and not cs.rough[i] and c < n_t - 1 and free[c, i]:
            run = [c]
            while run[-1] < n_t - 1 and free[run[-1], i] and len(run) <= cfg.inertia_frames:
                run.append(run[-1] + 1)
            if len(run) >= 2:
                _, v_fit, _, _ = fit_motion(t[run], pos[run, i], t[c], g)
                dv = float(np.linalg.norm(v_fit - cs.velocity[i]))
                tol = cfg.inertia_abs + cfg.inertia_rel * float(np.linalg.norm(cs.velocity[i]))
                inertia_dv = max(inertia_dv, dv / tol)
                inertia |= dv > tol
        elif np.all(np.isfinite(v_c)) and c < n_t - 1 and vis[c, i] and vis[c + 1, i] and own[i]:
            # Border-clipped: the visible part's centroid moves slower than the disc, never
            # against it; a step against the expected one reverses the motion.
            d = pos[c + 1, i] - pos[c, i]
            d_exp = v_c * laws.dt + 0.5 * g * laws.dt**2
            if np.linalg.norm(d_exp) > cfg.inertia_abs * laws.dt:
                against = -float(d @ d_exp) / float(np.linalg.norm(d_exp))
                inertia |= against > cfg.inertia_abs * laws.dt + 0.5 * np.linalg.norm(d_exp)
        # Constant acceleration g on every free run of generated frames.
        for a, b in _runs(free[:, i]):
            frames = np.arange(max(a, c), b + 1)  # interval rows a..b-1 join frames a..b
            if len(frames) < cfg.fit_min:
                continue
            _, _, a_fit, res = fit_motion(t[frames], pos[frames, i], t[frames[0]])
            dev = float(np.linalg.norm(a_fit - g))
            acc_dev, resid_max = max(acc_dev, dev), max(resid_max, res)
            accel |= dev > cfg.acc_tol or res > cfg.resid_tol
    ck["inertia"], ck["acceleration"] = bool(inertia), bool(accel)
    st.update(inertia_ratio_max=inertia_dv, accel_dev_max=acc_dev, fit_resid_max=resid_max)

    # Momentum and restitution at two-disc contacts (velocities fitted with gravity on the
    # free frames just before and after, both evaluated mid-contact).
    mom_err, e_dev = 0.0, 0.0
    mom_bad = e_bad = False
    n_contacts = 0
    for (i, j), close in contacts.items():
        if not (own[i] and own[j]) or not (cs.mass[i] > 0 and cs.mass[j] > 0):
            continue
        for k0, k1 in _runs(close):  # intervals k0..k1-1: frames k0 .. k1
            if k1 < n_cond:
                continue
            both_free = free[:, i] & free[:, j]
            pre = _free_frames(both_free, k0, -1, cfg.fit_frames)
            post = _free_frames(both_free, k1, +1, cfg.fit_frames)
            if len(post) < 2 and k1 - k0 >= 4:  # they stay in contact: moving together?
                post = np.array([f for f in range(k0 + 2, min(k1, k0 + 2 + cfg.fit_frames) + 1)
                                 if inv[f, i] and inv[f, j]])  # fmt: skip
            if len(pre) < 2 or len(post) < 2:
                continue
            # The impact lies within the first intervals of the episode (a long one is the
            # discs staying in touch after it).
            t_mid = 0.5 * (t[k0] + t[min(k1, k0 + 3)])
            fits = [[fit_motion(t[f], pos[f, o], t_mid, g) for o in (i, j)] for f in (pre, post)]
            (_, vi0, _, _), (_, vj0, _, _) = fits[0]
            (_, vi1, _, _), (_, vj1, _, _) = fits[1]
            mi, mj = cs.mass[i], cs.mass[j]
            scale = mi * np.linalg.norm(vi0) + mj * np.linalg.norm(vj0)
            if scale <= 0:
                continue
            n_contacts += 1
            err = float(np.linalg.norm(mi * (vi1 - vi0) + mj * (vj1 - vj0)) / scale)
            mom_err = max(mom_err, err)
            mom_bad |= err > cfg.mom_tol
            nrm = pos[k0, j] - pos[k0, i]  # line of centres just before the impact
            nrm = nrm / max(np.linalg.norm(nrm), 1e-12)
            u0, u1 = float((vi0 - vj0) @ nrm), float((vi1 - vj1) @ nrm)
            if u0 > cfg.min_closing:
                dev = abs(-u1 / u0 - laws.restitution)
                e_dev = max(e_dev, dev)
                e_bad |= dev > cfg.e_tol
    ck["momentum"], ck["energy"] = bool(mom_bad), bool(e_bad)
    st.update(momentum_error_max=mom_err, restitution_dev_max=e_dev, n_contacts=n_contacts)
    return _verdict(ck, DISC_CHECKS, st)


def _free_frames(free_iv: np.ndarray, k: int, direction: int, most: int) -> np.ndarray:
    """Frames reachable from frame ``k`` through free intervals (rows of ``free_iv``),
    going back (-1) or forward (+1), ``k`` included, at most ``most`` frames."""
    frames = [k]
    while len(frames) < most:
        f = frames[-1]
        row = f - 1 if direction < 0 else f
        if not 0 <= row < len(free_iv) or not free_iv[row]:
            break
        frames.append(f + direction)
    return np.array(sorted(frames))


def fidelity_discs(tracks, record, config="exact") -> dict:
    """Fidelity of one parsed disc video to its truth record (same initial state).

    Per generated frame: position deviation (largest over objects seen where the truth is
    fully in view) and a frame is divergent when it exceeds ``pos_tol``, an object is
    missing while its truth is fully in view, or seen while its truth is entirely outside.

    Returns:
      ``{"faithful", "causes" (of :data:`FIDELITY_CAUSES`), "divergence_frame" (first
      divergent frame, -1 none), "position_error_max", "position_error_mean" (units),
      "velocity_error" (mean over valid frames, units/s), "position_error" (T,) list}``.
    """
    from evals.laws import frame_velocities, inside_box

    cfg = resolve_config(config)
    tr = record.trajectory
    if tracks.positions.shape != tr.positions.shape:
        raise ValueError(f"tracks {tracks.positions.shape[:2]} do not match the truth "
                         f"{tr.positions.shape[:2]} (frames, objects)")  # fmt: skip
    n_t = tr.n_frames
    gen = np.arange(n_t) >= record.n_cond
    radii = np.asarray(record.objects.radii, dtype=np.float64)
    inside = inside_box(tr.positions, radii)
    outside = np.any((tr.positions + radii[:, None] < 0)
                     | (tr.positions - radii[:, None] > world.WORLD_SIZE), axis=-1)  # fmt: skip
    seen = tracks.visible & ~tracks.shared_color
    err = np.linalg.norm(tracks.positions - tr.positions, axis=-1)  # (T, N)
    err = np.where(seen & inside, err, np.nan)
    err_t = np.max(np.where(np.isfinite(err), err, 0.0), axis=1, initial=0.0)  # (T,)
    missing = gen[:, None] & inside & ~tracks.visible
    extra = gen[:, None] & outside & tracks.visible
    bad_pos = gen & (err_t > cfg.pos_tol)
    diverged = bad_pos | missing.any(axis=1) | extra.any(axis=1)
    v_hat = frame_velocities(tracks.positions)
    v = frame_velocities(tr.positions)
    ok = np.zeros((n_t, len(radii)), bool)
    ok[1:] = seen[1:] & seen[:-1] & inside[1:] & inside[:-1]
    ok &= gen[:, None]
    verr = np.linalg.norm(v_hat - v, axis=-1)[ok]
    vel_err = float(verr.mean()) if verr.size else float("nan")
    causes = [name for name, bad in (("position", bad_pos.any()),
                                     ("velocity", verr.size and vel_err > cfg.vel_tol),
                                     ("missing", missing.any()), ("extra", extra.any())) if bad]
    first = np.nonzero(diverged)[0]
    return {
        "faithful": not causes, "causes": causes,
        "divergence_frame": int(first[0]) if first.size else -1,
        "position_error_max": float(err_t[gen].max(initial=0.0)),
        "position_error_mean": float(err_t[gen].mean()) if gen.any() else float("nan"),
        "velocity_error": vel_err, "position_error": [float(x) for x in err_t],
    }  # fmt: skip


# --------------------------------------------------------------------------- rigid scenes


@dataclasses.dataclass(frozen=True)
class SceneTracks:
    """Connected blobs of the dynamic colours, linked over frames (world units).

    Attributes:
      centroid: (T, M, 2) centroid of chain m in frame t (NaN where absent).
      area: (T, M) px².
      clearance: (T, M) px from the blob to anything else (other blobs, static pixels, the
        frame border), NaN where absent.
      grounded: (T, M) bool, the blob is joined to a static pixel or the frame border by
        a chain of contacts (clearance at most ``support_px`` between consecutive links:
        dynamic blobs of any colour, static-colour pixels, the border); False where absent.
      tilt: (T, M) radians, how far from straight below the blob's nearest contact point
        lies (material within ``support_px``, walls; :func:`_support_tilt`): 0 when one
        lies straight below within a pixel's angular width, or contacts on both sides of
        straight below span it (less than pi apart through below); at most pi/2; NaN
        where absent. A round body with a tilted support cannot rest: it rolls.
      elongation: (T, M) major over minor RMS extent of the blob (1 for a disc), NaN where
        absent.
      angle: (T, M) its major axis direction, radians (``scene_parse.Blobs.angle``).
      color: (M,) colour class of each chain (index into the reference's colours).
      present: (T, M) bool.
      resolution: pixels per side.
      floor: (T, M) px from the blob to the frame's bottom edge (the floor), NaN where
        absent (None when not measured).
      clear_off_floor: (T, M) px from the blob to anything but the floor (other blobs,
        static pixels, the other three edges), NaN where absent (None when not measured).
      skew: (T, M, 2) the blob's third moment ``sum w |d|² d / sum w`` over its RMS radius
        cubed (d from the centroid, (col, row); :func:`_skew`): 0 for a disc, a bar or
        sticks (point-symmetric), about 0.2 for a jar, and turning with the body; NaN where
        absent (None when not measured).
    """

    centroid: np.ndarray
    area: np.ndarray
    clearance: np.ndarray
    elongation: np.ndarray
    angle: np.ndarray
    color: np.ndarray
    present: np.ndarray
    resolution: int
    grounded: np.ndarray
    tilt: np.ndarray
    floor: np.ndarray | None = None
    clear_off_floor: np.ndarray | None = None
    skew: np.ndarray | None = None


def scene_tracks(parsed, ref, config="exact", gravity=(0.0, -1.0),
                 friction: float = 0.0) -> SceneTracks:
    """Link the dynamic-colour blobs of a :class:`evals.scenes.SceneParse` into chains.

    A blob continues a chain of the previous frame when it is the mutual nearest blob of
    its colour within ``ref.jump_px`` and their log areas differ by less than
    ``link_area``. Specks (below ``scenes`` config ``speck_frac`` of the colour's smallest
    object) are left out. ``gravity`` (2,) world units/s² (only its direction is used) and
    the ``friction`` coefficient set the support ``tilt``.
    """
    from evals import scene_parse as sp
    from evals.scenes import SCENE_PRESETS

    cfg = resolve_config(config)
    speck = SCENE_PRESETS[cfg.parse].speck_frac
    res = ref.resolution
    n_t = parsed.n_frames
    total = parsed.memb.sum(-1) + parsed.unknown  # (T, R, R)
    rows, cols = np.mgrid[0:res, 0:res]
    sides = np.minimum(rows + 0.5, np.minimum(cols + 0.5, res - cols - 0.5))  # all but below
    border = np.minimum(sides, res - rows - 0.5)
    # (class, centroid, area, clearance, elongation, angle, floor, clearance off the floor,
    # skew)
    frames: list[list[tuple]] = []
    grounded_items: list[np.ndarray] = []  # (items,) bool per frame
    tilt_items: list[list[float]] = []
    g = np.asarray(gravity, np.float64)
    down = np.array([g[0], -g[1]], np.float64) / max(float(np.hypot(*g)), 1e-12)  # (col, row)
    cone = float(np.arctan(max(friction, 0.0)))  # friction cone half-angle, radians
    for k in range(n_t):
        material = total[k] > 0.1
        static_px = (parsed.memb[k, ..., ref.static_class] > 0.1 if ref.static_class >= 0
                     else np.zeros_like(material))  # fmt: skip
        items, masks, dists, tilts = [], [], [], []
        for cls in ref.dynamic_classes:
            objs = (ref.body_class == cls) & ~ref.static
            min_area = speck * float(ref.area[objs].min())
            b = parsed.blobs[k][cls]
            for j in range(b.n):
                if b.area[j] < min_area:
                    continue
                mine = b.labels == j
                d = sp.distance_to(mine)  # (R, R) px to the blob; symmetric set distance
                others = material & ~mine
                edge = float(border[mine].min(initial=np.inf))
                clr = float(min(d[others].min(initial=np.inf), edge) - 0.5)
                ground = min(float(d[static_px & ~mine].min(initial=np.inf)), edge) - 0.5
                off = float(min(d[others].min(initial=np.inf), sides[mine].min(initial=np.inf)))
                floor = float(res - 1 - rows[mine].max(initial=-1))
                items.append((cls, b.centroid[j], float(b.area[j]), clr,
                              float(_elongation(b.extents[j])), float(b.angle[j]), floor,
                              off - 0.5, _skew(parsed.memb[k, ..., cls], mine)))
                masks.append(mine)
                dists.append((d, ground <= cfg.support_px))
                tilts.append(_support_tilt(b.centroid[j], d, others, border, mine, down,
                                           cfg.support_px, cone))
        frames.append(items)
        grounded_items.append(_grounded(masks, dists, cfg.support_px))
        tilt_items.append(tilts)
    chains: list[list[tuple[int, int]]] = []  # (frame, item)
    tail: dict[int, int] = {}  # item index in the previous frame -> chain
    for k in range(n_t):
        new_tail = {}
        prev = frames[k - 1] if k else []
        cur = frames[k]
        links = {}
        for a, (ca, pa, aa, *_) in enumerate(prev):
            best = None
            for b_, (cb, pb, ab, *_) in enumerate(cur):
                d = float(np.hypot(*(pb - pa)))
                if cb == ca and d <= ref.jump_px and abs(np.log(ab / aa)) < cfg.link_area:
                    best = (d, b_) if best is None or d < best[0] else best
            if best is not None:
                links.setdefault(best[1], []).append((best[0], a))
        for b_ in range(len(cur)):
            cand = sorted(links.get(b_, []))
            if cand and cand[0][1] in tail:
                ch = tail.pop(cand[0][1])
            else:
                ch = len(chains)
                chains.append([])
            chains[ch].append((k, b_))
            new_tail[b_] = ch
        tail = new_tail
    m = len(chains)
    cen = np.full((n_t, m, 2), np.nan)
    area = np.full((n_t, m), np.nan)
    clr = np.full((n_t, m), np.nan)
    elong = np.full((n_t, m), np.nan)
    angle = np.full((n_t, m), np.nan)
    grounded = np.zeros((n_t, m), bool)
    tilt = np.full((n_t, m), np.nan)
    floor = np.full((n_t, m), np.nan)
    off = np.full((n_t, m), np.nan)
    skew = np.full((n_t, m, 2), np.nan)
    color = np.array([frames[items[0][0]][items[0][1]][0] for items in chains], np.int64)
    for ch, items in enumerate(chains):
        for k, b_ in items:
            _, p, a, c_, e_, an, fl, of, sk = frames[k][b_]
            cen[k, ch] = world.pixel_to_world(p, res)
            area[k, ch], clr[k, ch], elong[k, ch], angle[k, ch] = a, c_, e_, an
            floor[k, ch], off[k, ch], skew[k, ch] = fl, of, sk
            grounded[k, ch] = grounded_items[k][b_]
            tilt[k, ch] = tilt_items[k][b_]
    return SceneTracks(centroid=cen, area=area, clearance=clr, elongation=elong, angle=angle,
                       color=color, present=np.isfinite(area), resolution=int(res),
                       grounded=grounded, tilt=tilt, floor=floor,
                       clear_off_floor=off, skew=skew)  # fmt: skip


def _skew(weight: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2,) normalized third moment (col, row) of the pixels ``mask`` (R, R) weighted by
    ``weight`` (R, R): ``sum w |d|² d / sum w / rms³``, d from the weighted centroid and
    rms the RMS distance. Zero for point-symmetric shapes; it turns with the shape."""
    rr, cc = np.nonzero(mask)
    w = weight[rr, cc].astype(np.float64)
    if not len(w) or w.sum() <= 0:
        return np.full(2, np.nan)
    d = np.stack([cc, rr], -1) + 0.5
    d -= (w[:, None] * d).sum(0) / w.sum()
    r2 = (d**2).sum(-1)
    rms = np.sqrt((w * r2).sum() / w.sum())
    return (w[:, None] * r2[:, None] * d).sum(0) / w.sum() / max(rms, 1e-9) ** 3


def _nearest_points(dist: np.ndarray):
    """(rows, cols) of the local minima (3x3, ties kept) of ``dist`` (R, R), ``inf`` off
    the contact: one point per touching surface, where it comes nearest the body (the
    contact points), not every pixel within reach, which spread around a tilted
    tangent's contact to both sides of straight below."""
    rows, cols = np.nonzero(np.isfinite(dist))
    if not len(rows):
        return rows, cols
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    sub = np.pad(dist[r0:r1, c0:c1], 1, constant_values=np.inf)
    h, w = r1 - r0, c1 - c0
    low = np.full((h, w), np.inf)
    for dr in (0, 1, 2):
        for dc in (0, 1, 2):
            if dr != 1 or dc != 1:
                low = np.minimum(low, sub[dr:dr + h, dc:dc + w])
    core = sub[1:-1, 1:-1]
    rr, cc = np.nonzero(np.isfinite(core) & (core <= low))
    return rr + r0, cc + c0


def _contact_points(dist: np.ndarray, centroid, near: float = 0.6) -> np.ndarray:
    """(P, 2) px from ``centroid`` (col, row) to each contact point of a body.

    ``dist`` (R, R) is the distance of contact material to the body (``inf`` elsewhere).
    A contact point is a local minimum of it (:func:`_nearest_points`) within ``near`` px
    of the smallest distance of its connected piece of material: pixel steps ripple the
    distance along a tilted tangent, with minima away from the tangent point that come
    nearer straight below; the tangent point itself is the piece's nearest. A piece that
    touches the body at two places (a jar's floor and wall) keeps both. The tilt read
    from these points errs low (fewer flags), not high.
    """
    from evals import scene_parse as sp

    rows, cols = _nearest_points(dist)
    if not len(rows):
        return np.zeros((0, 2))
    labels = np.full(dist.shape, -1, np.int64)
    sp._label(np.isfinite(dist), labels)
    lab, dv = labels[rows, cols], dist[rows, cols]
    low = np.full(lab.max() + 1, np.inf)
    np.minimum.at(low, lab, dv)
    keep = dv <= low[lab] + near
    return np.stack([cols[keep] + 0.5, rows[keep] + 0.5], -1) - np.asarray(centroid, np.float64)


def _support_tilt(centroid, d, others, border, mine, down, support_px: float,
                  cone: float = 0.0) -> float:
    """Tilt (radians) of one blob's support; see :class:`SceneTracks` ``tilt``.

    A contact pushes a round body along the line from the contact point to its centre
    (plus friction, within ``cone`` of it), so the contacts can hold its weight when
    straight below lies in the cone their directions span: one contact straight below, or
    two on either side of it less than pi apart through below (a ball on a slope wedged
    under an overhang is held). Each direction is known to a pixel's angular width.

    Args:
      centroid: (2,) px (col, row) of the blob.
      d: (R, R) px from each pixel centre to the blob.
      others: (R, R) bool material that is not the blob.
      border: (R, R) px from each pixel centre to the frame's edge.
      mine: (R, R) bool the blob.
      down: (2,) unit gravity direction in (col, row).
      support_px: the largest clearance (px) of a contact.
      cone: the friction cone's half-angle ``atan(mu)`` (radians), which widens what a
        pair of contacts can hold.
    """
    vec = _contact_points(np.where(others & (d - 0.5 <= support_px), d, np.inf), centroid)
    width = np.arctan2(0.71, np.maximum(np.hypot(vec[:, 0], vec[:, 1]), 1e-9))
    r_b, c_b = np.nonzero(mine & (border - 0.5 <= support_px))
    if len(r_b):  # a wall is touched along its normal
        res = mine.shape[0]
        side = np.argmin(np.stack([c_b + 0.5, res - c_b - 0.5, r_b + 0.5, res - r_b - 0.5]), 0)
        normals = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])[side]
        vec = np.concatenate([vec, normals])
        width = np.concatenate([width, np.zeros(len(normals))])
    if not len(vec):
        return float(np.pi / 2)
    phi = np.arctan2(vec[:, 0] * down[1] - vec[:, 1] * down[0], vec @ down)
    off = np.abs(phi) - width  # (P,) radians from straight below, at the nearest
    if (off <= 0).any():
        return 0.0  # a contact straight below within a pixel
    right, left = off[phi > 0] - cone, off[phi < 0] - cone
    if len(right) and len(left) and max(right.min(), 0) + max(left.min(), 0) <= np.pi:
        return 0.0  # contacts on both sides, less than pi apart through straight below
    return float(min(off.min(), np.pi / 2))


def _grounded(masks: list, dists: list, support_px: float) -> np.ndarray:
    """(B,) bool: which of one frame's B blobs a chain of contacts joins to the ground.

    Args:
      masks: B (R, R) bool blob masks.
      dists: B pairs (distance to the blob (R, R) px, touches the ground directly).
      support_px: the largest clearance (px) between two blobs that touch.
    """
    n = len(masks)
    on = np.array([g for _, g in dists], bool)
    todo = list(np.nonzero(on)[0])
    while todo:  # breadth-first from the blobs that touch a static body or the border
        i = todo.pop()
        d = dists[i][0]
        for j in range(n):
            if not on[j] and d[masks[j]].min() - 0.5 <= support_px:
                on[j] = True
                todo.append(j)
    return on


def plausibility_scene(parsed, ref, laws: Laws, config="exact") -> dict:
    """Plausibility of one parsed rigid-scene video (see the module doc for the checks).

    Args:
      parsed: :class:`evals.scenes.SceneParse` of the video (T, R, R).
      ref: :class:`evals.scenes.SceneReference` from its conditioning frame.
      laws: the scenario's :class:`Laws` (gravity, restitution, from rest).
      config: :class:`JudgeConfig` or preset name (its ``parse`` picks the scene preset).

    Returns:
      Like :func:`plausibility_discs`, with :data:`SCENE_CHECKS`; ``stats`` also holds the
      scene checks' ``*_max`` numbers and ``first_frame`` per check.
    """
    from evals import scenes

    cfg = resolve_config(config)
    base = scenes.check(parsed, ref, cfg.parse)
    ck = {_SCENE_NAMES.get(c, c): base[c] for c in scenes.CHECKS}
    st: dict = {k: v for k, v in base.items() if k.endswith("_max")}
    st["first_frame"] = {_SCENE_NAMES.get(c, c): f for c, f in base["first_frame"].items()}
    tracks = scene_tracks(parsed, ref, cfg, laws.gravity, laws.friction)
    px = world.WORLD_SIZE / tracks.resolution  # units per px
    n_t, n_c = tracks.present.shape
    t = np.arange(n_t) * laws.dt
    g = laws.g
    g_abs = float(np.linalg.norm(g))
    c = ref.n_cond - 1
    cen, pres, clr = tracks.centroid, tracks.present, tracks.clearance
    step = np.linalg.norm(np.diff(cen, axis=0), axis=-1)  # (T-1, M) units
    both = pres[1:] & pres[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        free = both & (np.minimum(clr[1:], clr[:-1]) * px > cfg.free_reach * step + cfg.free_margin)
        rest = both & (step < cfg.rest_tol)
        # A rigid body keeps its area: a blob that grows or shrinks over k -> k+1 is two
        # bodies of one colour merging or parting, and its centroid's jump is no motion.
        merged = np.abs(np.log(tracks.area[1:] / tracks.area[:-1])) > cfg.merge_area
    unsupported = accel = spont = energy = False
    acc_dev = launch = 0.0
    rebound = 0.0
    for m in range(n_c):
        # Unsupported at rest: three frames still, joined to no static body or wall.
        for k in range(max(c, 1), n_t - 1):
            if rest[k - 1, m] and rest[k, m] and not tracks.grounded[k, m]:
                unsupported = True
        # Free flight at g.
        fits = []
        for a, b in _runs(free[:, m]):
            frames = np.arange(max(a, c), b + 1)
            if len(frames) < cfg.fit_min:
                fits.append((a, b, None))
                continue
            _, v, a_fit, _ = fit_motion(t[frames], cen[frames, m], t[frames[0]])
            dev = float(np.linalg.norm(a_fit - g))
            acc_dev = max(acc_dev, dev)
            accel |= dev > cfg.acc_tol_scene
            fits.append((a, b, v))
        # Bounces: a downward free run, a short contact, an upward free run.
        for (a0, b0, _), (a1, b1, _) in zip(fits, fits[1:], strict=False):
            if a1 - b0 > 3 or b1 < ref.n_cond:
                continue
            f0 = np.arange(max(a0, b0 - cfg.fit_frames + 1), b0 + 1)
            f1 = np.arange(a1, min(b1, a1 + cfg.fit_frames - 1) + 1)
            if len(f0) < 2 or len(f1) < 2:
                continue
            t_mid = 0.5 * (t[b0] + t[a1])
            _, v0, _, _ = fit_motion(t[f0], cen[f0, m], t_mid, g)
            _, v1, _, _ = fit_motion(t[f1], cen[f1, m], t_mid, g)
            if -v0[1] > cfg.min_impact:
                ratio = max(v1[1], 0.0) / -v0[1]
                rebound = max(rebound, ratio)
                gain = np.linalg.norm(v1) > (1 + cfg.energy_tol) * np.linalg.norm(v0)
                energy |= ratio > laws.restitution + cfg.energy_tol or bool(gain)
        # Launches: leaving a contact upward faster than restitution returns what came in
        # (a reversed inelastic impact), unless something moving next to it pushed it.
        sp = step[:, m] / laws.dt  # (T-1,) units/s
        for k in range(max(c + 1, 3), n_t - 1):
            if g_abs == 0 or not np.all(pres[k - 3 : k + 2, m]):
                continue
            if merged[k, m]:
                continue
            # Upward speed at the start of interval k -> k+1 (gravity slows it inside).
            v_up = float(-((cen[k + 1, m] - cen[k, m]) @ g) / g_abs) / laws.dt
            v_up += 0.5 * g_abs * laws.dt
            v_in = float(np.max(sp[k - 3 : k]))
            if v_up > cfg.min_launch and v_up > (laws.restitution + cfg.energy_tol) * v_in + \
                    cfg.launch_tol and not _pushed(tracks, m, k - 3, k + 1, cfg.push * v_up):
                energy = True
                launch = max(launch, v_up - v_in)
        # From rest: nothing moves up at first, nothing falls faster than free fall, and a
        # body touching nothing falls at g.
        if laws.from_rest and pres[c, m]:
            for k in range(c + 1, min(n_t, c + 1 + cfg.from_rest_frames)):
                if not np.all(pres[c : k + 1, m]) or abs(
                        np.log(tracks.area[k, m] / tracks.area[c, m])) > cfg.merge_area:
                    break  # gone, or merged with / parted from a body of its colour
                d = cen[k, m] - cen[c, m]
                fall = 0.5 * g * (t[k] - t[c]) ** 2
                f_abs = float(np.linalg.norm(fall))
                up = float(-(d @ g) / g_abs) if g_abs > 0 else 0.0
                spont |= up > cfg.from_rest_tol
                if np.linalg.norm(d) > (1 + cfg.from_rest_slack) * f_abs + cfg.from_rest_tol:
                    accel = True
                if np.all(free[c:k, m]) and k >= c + 2:
                    dev = float(np.linalg.norm(d - fall))
                    accel |= dev > cfg.free_fall_slack * f_abs + cfg.from_rest_tol
        for k in range(max(c, 2), n_t - 1):
            if not (rest[k - 2, m] and rest[k - 1, m] and both[k, m]):
                continue
            if merged[k, m]:
                continue
            rise = float(-((cen[k + 1, m] - cen[k, m]) @ g) / max(g_abs, 1e-12))
            if rise > cfg.rise_tol and not _pushed(tracks, m, k - 1, k + 1,
                                                   cfg.push * rise / laws.dt):
                spont = True
    roll = _still_on_slope(tracks, ref, laws, cfg, c, merged) if g_abs > 0 else 0.0
    unsupported |= roll > 0
    # Teleports of a colour only one body has (its colour centroid is that body's).
    jump_max = 0.0
    for cls in ref.dynamic_classes:
        objs = np.nonzero((ref.body_class == cls) & ~ref.static)[0]
        if len(objs) != 1:
            continue
        w = parsed.memb[..., cls].astype(np.float64)  # (T, R, R)
        area = w.sum(axis=(1, 2))
        ok = area > 0.5 * ref.area[objs[0]]
        rr, cc = np.mgrid[0 : ref.resolution, 0 : ref.resolution] + 0.5
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.stack([(w * cc).sum(axis=(1, 2)), (w * rr).sum(axis=(1, 2))], -1) / area[:, None]
        xy = np.where(ok[:, None], world.pixel_to_world(p, ref.resolution), np.nan)
        s_ = np.linalg.norm(np.diff(xy, axis=0), axis=-1)  # (T-1,)
        for k in range(max(c, 0), n_t - 1):
            if not np.isfinite(s_[k]):
                continue
            near = [s_[q] for q in (k - 1, k + 1) if 0 <= q < n_t - 1 and np.isfinite(s_[q])]
            if not near:
                continue
            excess = s_[k] - cfg.jump_neighbour * max(near)
            jump_max = max(jump_max, excess)
            ck["teleport"] = ck["teleport"] or bool(excess > cfg.scene_jump)
    # Released from rest, the scene's energy is the potential energy of its first frame:
    # contacts only lose energy and kinetic energy is never negative, so the centre of mass
    # of its dynamic bodies (one density: of their pixels) never rises above its start.
    com_rise = _com_rise(parsed, ref, g, cfg.com_area) if laws.from_rest and g_abs > 0 else 0.0
    energy |= com_rise > cfg.com_rise
    glide = _glide(tracks, ref, laws, cfg, c) if laws.friction > 0 and g_abs > 0 else 0.0
    dead = _dead_landing(tracks, ref, laws, cfg, c, merged)
    energy |= dead > 0
    ck.update(unsupported=unsupported, acceleration=accel, spontaneous=spont, energy=energy,
              friction=glide > 0)
    st.update(accel_dev_max=acc_dev, rebound_max=rebound, launch_max=launch, n_chains=n_c,
              jump_excess_max=jump_max, com_rise_max=com_rise, glide_speed_max=glide,
              still_on_slope_max=roll, dead_landing_max=dead)
    return _verdict(ck, SCENE_CHECKS, st)


def _rolling_bodies(ref, cfg: JudgeConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N,) elongation of each reference body and (N,) bool whether it rolls freely: a
    ball, convex and less than ``glide_elong`` elongated (jars are hollow, bars long)."""
    elong = _elongation(ref.extents)
    return elong, (elong < cfg.glide_elong) & ref.convex


def _bodies_like(area, elong, areas, elongs, tol: float) -> np.ndarray:
    """(N,) bool: which of N bodies (px² ``areas``, ``elongs``) a chain whose blob had
    ``area`` and ``elong`` over some frames (median) could be: both within ``tol`` (log)."""
    return (np.abs(np.log(np.median(area) / areas)) < tol) & (
        np.abs(np.log(np.median(elong) / elongs)) < tol)


def _still_on_slope(tracks: SceneTracks, ref, laws: Laws, cfg: JudgeConfig, c: int,
                    merged: np.ndarray) -> float:
    """Largest roll (world units) that a ball resting on a tilted support should have made
    over ``hold_frames`` intervals and did not; 0 when there is none.

    A ball (a chain whose area and elongation match only bodies of its colour that can
    roll) whose supports all lie to one side of straight below (``tracks.tilt`` > 0 in
    every frame of the window) rolls down from rest at least at ``(5/7) g sin(tilt)``
    (rolling without slipping; faster when it slips). Over a window of ``W`` intervals it
    must travel ``d = (5/7) g sin(tilt) (W dt)² / 2``, the tilt the window's least; a window
    where ``d >= hold_min`` and the ball moves less than ``hold_move * d`` is flagged.
    """
    n_t, n_c = tracks.present.shape
    w = cfg.hold_frames
    if n_t <= w:
        return 0.0
    g_abs = float(np.linalg.norm(laws.g))
    elong, rolls = _rolling_bodies(ref, cfg)
    best = 0.0
    for m in range(n_c):
        mine = (ref.body_class == tracks.color[m]) & ~ref.static
        for k in range(max(c, 0), n_t - w):
            fr = np.arange(k, k + w + 1)
            if not tracks.present[fr, m].all() or merged[fr[:-1], m].any():
                continue
            a = tracks.area[fr, m]
            e = tracks.elongation[fr, m]
            one = _bodies_like(a, e, ref.area[mine], elong[mine], cfg.glide_area)
            if not one.any() or not rolls[mine][one].all():
                continue  # not a ball
            tilt = float(np.min(tracks.tilt[fr, m]))
            need = 0.5 * (5 / 7) * g_abs * np.sin(min(tilt, np.pi / 2)) * (w * laws.dt) ** 2
            moved = float(np.max(np.linalg.norm(tracks.centroid[fr, m] - tracks.centroid[k, m],
                                                axis=-1)))  # fmt: skip
            if need >= cfg.hold_min and moved < cfg.hold_move * need:
                best = max(best, need - moved)
    return best


def _dead_landing(tracks: SceneTracks, ref, laws: Laws, cfg: JudgeConfig, c: int,
                  merged: np.ndarray) -> float:
    """Largest hop (px) missing from a ball's landing on the floor (one that rises less than
    ``hop_frac`` of the hop restitution gives it); 0 when there is none."""
    px = world.WORLD_SIZE / tracks.resolution
    return max([(hop - rise) / px for _, _, hop, rise in
                _landings(tracks, ref, laws, cfg, c, merged)
                if rise < cfg.hop_frac * hop], default=0.0)  # fmt: skip


def _landings(tracks: SceneTracks, ref, laws: Laws, cfg: JudgeConfig, c: int,
              merged: np.ndarray):
    """Yield ``(chain, frame, hop, rise)`` (units) for each judged landing of a ball on the
    floor: the highest its hop at restitution e reaches at a frame time, and how high it
    rose over those frames.

    A ball (a chain matching only round bodies of its colour) that flies free, touching
    nothing, over the ``hop_fit`` frames before it first touches the floor (the frame's
    bottom edge, y = 0) is a parabola at g: fitted, it gives when it reached its landing
    level (the lowest its centre gets on the floor over the next frames) and its impact
    speed v. A contact with restitution e sends it back up at u = e v, so at the frame
    times t after the impact time t_i it must be ``u τ - g τ² / 2`` (τ = t - t_i) above
    that level until it lands again at τ = 2u/g; ``hop`` is the least of that over
    impact times within ``hop_dt`` of t_i (near the impact the height changes fast).
    Where that predicted hop reaches ``hop_min_px`` at some frame time and the ball rises
    less than ``hop_frac`` of it, the landing lost more energy than restitution e allows.
    Judged only where nothing but the floor comes within ``hop_clear`` px of the ball from
    the frame before the landing until one frame after the predicted hop (a body on it,
    beside it or under it takes part in the impact), and where gravity points straight
    down.
    """
    g = laws.g
    if tracks.floor is None or laws.restitution <= 0 or g[0] != 0 or g[1] >= 0:
        return
    g_abs = float(-g[1])
    dt = laws.dt
    px = world.WORLD_SIZE / tracks.resolution
    n_t, n_c = tracks.present.shape
    t = np.arange(n_t) * dt
    elong, rolls = _rolling_bodies(ref, cfg)
    cen, pres = tracks.centroid, tracks.present
    for m in range(n_c):
        mine = (ref.body_class == tracks.color[m]) & ~ref.static
        on = pres[:, m] & (np.nan_to_num(tracks.floor[:, m], nan=np.inf) <= cfg.support_px)
        for j in range(max(c, 0) + cfg.hop_fit, n_t - 1):
            if not on[j] or on[j - 1]:
                continue  # not the first frame on the floor
            fit = np.arange(j - cfg.hop_fit, j)
            if not pres[fit, m].all() or merged[fit[0] : j, m].any() or \
                    not (tracks.clearance[fit, m] > cfg.support_px).all():
                continue  # not in free flight before
            one = _bodies_like(tracks.area[fit, m], tracks.elongation[fit, m], ref.area[mine],
                               elong[mine], cfg.glide_area)  # fmt: skip
            if not one.any() or not rolls[mine][one].all():
                continue  # not a ball
            p, v, _, resid = fit_motion(t[fit], cen[fit, m], t[j - 1], g)
            if not resid <= cfg.resid_tol:
                continue
            later = np.arange(j, min(n_t, j + 6))
            y_rest = float(np.min(cen[later[on[later]], m, 1]))
            disc = v[1] ** 2 + 2 * g_abs * (p[1] - y_rest)
            if disc < 0:
                continue
            tau = (v[1] + np.sqrt(disc)) / g_abs  # after frame j - 1, when it reaches y_rest
            if not 0 < tau <= 2 * dt:
                continue  # the fit does not reach the floor level where the ball does
            u = laws.restitution * (g_abs * tau - v[1])
            since = t - (t[j - 1] + tau)  # (T,) s since the impact
            hop = (since > 0) & (since < 2 * u / g_abs)
            if not hop.any():
                continue
            ks = np.nonzero(hop)[0]
            # The least the hop can be at each frame with the impact up to hop_dt earlier or
            # later (the height is concave in time: its least is at an end).
            pred = np.maximum(np.minimum(*(u * (since[ks] + d) - 0.5 * g_abs * (since[ks] + d) ** 2
                                           for d in (-cfg.hop_dt, cfg.hop_dt))), 0.0)
            if pred.max() < cfg.hop_min_px * px or ks[-1] + 1 >= n_t:
                continue
            win = np.arange(j - 1, ks[-1] + 2)
            if not pres[win, m].all() or merged[win[:-1], m].any() or \
                    not (tracks.clear_off_floor[win, m] > cfg.hop_clear).all():
                continue  # something else takes part in the landing
            yield m, j, float(pred.max()), float(np.max(cen[ks, m, 1] - y_rest))


def _elongation(extents: np.ndarray) -> np.ndarray:
    """Major over minor RMS extent (..., 2) -> (...), the minor floored at half a pixel: one
    definition for parsed blobs and for the reference's bodies, which are matched."""
    extents = np.asarray(extents, np.float64)
    return extents[..., 0] / np.maximum(extents[..., 1], 0.5)


def _glide(tracks: SceneTracks, ref, laws: Laws, cfg: JudgeConfig, c: int) -> float:
    """Fastest frictionless glide (units/s) of a body that cannot roll, in the generated
    frames after frame ``c``; 0 when there is none (see :class:`JudgeConfig` ``glide_*``)."""
    n_t, n_c = tracks.present.shape
    w = cfg.glide_frames
    t = np.arange(w + 1) * laws.dt
    elong, rolls = _rolling_bodies(ref, cfg)
    best = 0.0
    for m in range(n_c):
        mine = (ref.body_class == tracks.color[m]) & ~ref.static
        run = 0
        for k in range(max(c, 1), n_t - w):
            v = _glide_speed(tracks, m, np.arange(k, k + w + 1), t, ref.area[mine],
                             elong[mine], rolls[mine], cfg)
            run = run + 1 if v > 0 else 0
            if run >= cfg.glide_windows:
                best = max(best, v)
    return best


def _glide_speed(tracks: SceneTracks, m: int, fr, t, areas, elong, rolls,
                 cfg: JudgeConfig) -> float:
    """Horizontal speed (units/s) of chain ``m`` if it glides without friction over the
    frames ``fr`` (times ``t`` from the first), else 0. ``areas``, ``elong``, ``rolls``:
    px², elongation and whether it can roll, of each dynamic body of its colour."""
    if not tracks.present[fr, m].all() or np.max(tracks.clearance[fr, m]) > cfg.support_px:
        return 0.0
    a = tracks.area[fr, m]
    if np.abs(np.log(a / a[0])).max() > cfg.merge_area:
        return 0.0  # merging with or parting from a body of its colour
    e = tracks.elongation[fr, m]
    one = _bodies_like(a, e, areas, elong, cfg.glide_area)
    sk = None if tracks.skew is None else tracks.skew[fr, m, 0] + 1j * tracks.skew[fr, m, 1]
    skewed = sk is not None and np.median(np.abs(sk)) > cfg.glide_skew
    if skewed:
        one &= ~rolls  # a disc has no skew: it is not a ball
    if not one.any() or rolls[one].any():
        return 0.0  # not a body that cannot roll
    if skewed and np.median(e) < cfg.glide_elong:  # a round hollow body: its skew turns
        turn = np.abs(np.angle(sk / sk[0]))
    else:
        turn = np.abs(np.angle(np.exp(2j * (tracks.angle[fr, m] - tracks.angle[fr[0], m])))) / 2
    if e.max() / e.min() > cfg.glide_shape or turn.max() > cfg.glide_turn:
        return 0.0  # tumbling, rolling (a tipped jar) or turning about a contact
    x, y = tracks.centroid[fr, m, 0], tracks.centroid[fr, m, 1]
    acc, vx, _ = np.polyfit(t, x, 2)
    vx = vx + acc * t[-1]  # mean velocity over the window (the fit is about its start)
    if abs(vx) < cfg.glide_speed or abs(y[-1] - y[0]) > cfg.glide_rise * abs(x[-1] - x[0]):
        return 0.0
    return float(abs(vx)) if abs(2 * acc) < cfg.glide_accel else 0.0


def _com_rise(parsed, ref, g, area_tol: float) -> float:
    """Largest rise (world units, against ``g``) of the centre of the dynamic-colour pixels
    of a parsed scene above its first frame's, over the frames whose dynamic area is within
    ``area_tol`` of the first frame's (0 when none is)."""
    w = parsed.memb[..., list(ref.dynamic_classes)].sum(axis=-1, dtype=np.float64)  # (T,R,R)
    r = ref.resolution
    mid = np.arange(r) + 0.5
    xy = world.pixel_to_world(np.stack([mid, mid], -1), r)  # (R, 2): x per column, y per row
    up = -np.asarray(g, np.float64) / np.linalg.norm(g)
    area = w.sum(axis=(1, 2))
    if area[0] <= 0:
        return 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (up[0] * (w.sum(axis=1) * xy[:, 0]).sum(1)
             + up[1] * (w.sum(axis=2) * xy[:, 1]).sum(1)) / area  # (T,)
    ok = np.abs(area / area[0] - 1.0) <= area_tol
    ok[0] = False
    return float(np.max(h[ok] - h[0])) if ok.any() else 0.0


def _pushed(tracks: SceneTracks, m: int, k0: int, k1: int, v_need: float) -> bool:
    """Whether another chain, moving at ``v_need`` units/s or faster over some interval
    ``k -> k+1`` with ``k0 <= k < k1`` (before chain m's own motion), was within touching
    distance of chain m then (centroid distance below 2.5 times the sum of their
    area-equivalent radii plus half a unit), so it could have pushed it."""
    px = world.WORLD_SIZE / tracks.resolution
    cen, pres = tracks.centroid, tracks.present
    dt = world.FRAME_DT
    for k in range(max(k0, 0), min(k1, cen.shape[0] - 1)):
        if not pres[k + 1, m]:
            continue
        r = np.sqrt(np.nan_to_num(tracks.area[k + 1]) / np.pi) * px  # (M,) units
        for o in range(cen.shape[1]):
            if o == m or not (pres[k, o] and pres[k + 1, o]):
                continue
            near = np.linalg.norm(cen[k + 1, o] - cen[k + 1, m]) < 2.5 * (r[o] + r[m]) + 0.5
            if near and np.linalg.norm(cen[k + 1, o] - cen[k, o]) / dt >= v_need:
                return True
    return False


def fidelity_scene(parsed, truth_parsed, ref, config="exact") -> dict:
    """Fidelity of a rigid-scene video to the truth render (both parsed with ``ref``).

    Per frame and dynamic colour, the deviation is the larger of the two membership-
    weighted mean distances (units) from one video's colour pixels to the other's; a
    generated frame with a deviation above ``pos_tol``, or a colour present in one and not
    the other, diverges. Colour-mass centroids give a velocity deviation.
    """
    from evals import scene_parse as sp

    cfg = resolve_config(config)
    px = world.WORLD_SIZE / ref.resolution
    n_t = parsed.n_frames
    if truth_parsed.n_frames != n_t:
        raise ValueError(f"video has {n_t} frames, truth {truth_parsed.n_frames}")
    dev = np.zeros(n_t)
    missing = np.zeros(n_t, bool)
    cen = np.full((2, n_t, len(ref.dynamic_classes), 2), np.nan)
    for k in range(n_t):
        for q, cls in enumerate(ref.dynamic_classes):
            wa = parsed.memb[k][..., cls].astype(np.float64)
            wb = truth_parsed.memb[k][..., cls].astype(np.float64)
            ma, mb = wa > 0.5, wb > 0.5
            if ma.any() != mb.any():
                missing[k] = True
                continue
            if not ma.any():
                continue
            da, db = sp.distance_to(mb), sp.distance_to(ma)
            d = max(float((wa * da).sum() / wa.sum()), float((wb * db).sum() / wb.sum()))
            dev[k] = max(dev[k], d * px)
            for s, w in enumerate((wa, wb)):
                rr, cc = np.nonzero(w > 0)
                ww = w[rr, cc]
                cen[s, k, q] = world.pixel_to_world(
                    np.array([(cc + 0.5) @ ww, (rr + 0.5) @ ww]) / ww.sum(), ref.resolution)
    gen = np.arange(n_t) >= ref.n_cond
    bad = gen & (dev > cfg.pos_tol)
    vel = np.diff(cen, axis=1) / world.FRAME_DT  # (2, T-1, Q, 2)
    verr = np.linalg.norm(vel[0] - vel[1], axis=-1)[gen[1:]]
    verr = verr[np.isfinite(verr)]
    vel_err = float(verr.mean()) if verr.size else float("nan")
    slow = bool(verr.size and vel_err > cfg.vel_tol)
    causes = [n for n, b in (("position", bad.any()), ("velocity", slow),
                             ("missing", (gen & missing).any())) if b]  # fmt: skip
    first = np.nonzero(bad | (gen & missing))[0]
    return {
        "faithful": not causes, "causes": causes,
        "divergence_frame": int(first[0]) if first.size else -1,
        "position_error_max": float(dev[gen].max(initial=0.0)),
        "position_error_mean": float(dev[gen].mean()) if gen.any() else float("nan"),
        "velocity_error": vel_err, "position_error": [float(x) for x in dev],
    }  # fmt: skip


# --------------------------------------------------------------------------- one video


def choose_preset(frames, record, preset: str = "auto") -> str:
    """``exact`` for lossless renders, ``lossy`` otherwise (or ``preset`` itself)."""
    from evals.inputs import parse_preset

    if preset != "auto":
        resolve_config(preset)
    return parse_preset(np.asarray(frames), record.objects.rgb, preset)


def judge_video(frames, record, laws: Laws | None = None, *, config="auto", luma=None,
                truth=None, truth_frames=None, fidelity: bool = True,
                tracks=None) -> dict:  # fmt: skip
    """Both verdicts of one video (T, R, R, 3) uint8 whose conditioning frames are
    ``record``'s.

    Args:
      frames: the video, conditioning frames included.
      record: the truth :class:`~physim.record.Record` (its conditioning frames, objects
        and, for fidelity only, its later states).
      laws: the scenario's laws (default :func:`laws_of_record`).
      config: ``auto`` (exact for lossless frames), a preset name or a :class:`JudgeConfig`.
      luma: (T, R, R) codec luma plane for the lossy disc parse (mp4 sources).
      truth: the fidelity truth when it is not ``record`` (same objects).
      truth_frames: the truth render at this resolution (rigid fidelity; rendered if None).
      fidelity: also compute the fidelity verdict.
      tracks: the video's :class:`~evals.parse.Tracks` when the caller has parsed it
        already with the same preset (disc scenarios; scenes are always parsed here).

    Returns:
      ``{"plausibility": {...}, "fidelity": {...} | None, "preset": name}``.
    """
    from evals import parse, scenes

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, R, R, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] != record.trajectory.n_frames:
        raise ValueError(f"video has {frames.shape[0]} frames, the truth "
                         f"{record.trajectory.n_frames}")  # fmt: skip
    if isinstance(config, JudgeConfig):
        cfg = config
    else:
        cfg = resolve_config(choose_preset(frames, record, config))
    laws = laws_of_record(record) if laws is None else laws
    truth = record if truth is None else truth
    res = frames.shape[1]
    if is_scene(record):
        ref = scenes.reference(record, res, cfg.parse)
        parsed = scenes.parse_scene(frames, ref, cfg.parse)
        out = {"plausibility": plausibility_scene(parsed, ref, laws, cfg), "fidelity": None}
        if fidelity:
            if truth_frames is None:
                from physim.scenarios.combinatorial import render

                truth_frames = render(truth, res)
            tp = scenes.parse_scene(truth_frames, ref, "exact")
            out["fidelity"] = fidelity_scene(parsed, tp, ref, cfg)
    else:
        if tracks is None:
            lossy = cfg.parse == "lossy"
            tracks = parse.parse_record(frames, record, config=cfg.parse,
                                        luma=luma if lossy else None)  # fmt: skip
        out = {"plausibility": plausibility_discs(tracks, record.n_cond, laws, cfg,
                                                  fallback_radii=record.objects.radii),
               "fidelity": fidelity_discs(tracks, truth, cfg) if fidelity else None}  # fmt: skip
    out["preset"] = cfg.parse
    return out


def summarize(rows: list[dict]) -> dict:
    """Rates over per-video rows (``plausible``, ``faithful``, ``causes``, ``fidelity_causes``,
    ``split``, ``level``): overall, per split and per ``split/level``."""

    def one(rs):
        n = len(rs)
        causes: dict[str, float] = {}
        fcauses: dict[str, float] = {}
        for r in rs:
            for c in r["causes"]:
                causes[c] = causes.get(c, 0) + 1 / n
            for c in r["fidelity_causes"]:
                fcauses[c] = fcauses.get(c, 0) + 1 / n
        div = [r["divergence_frame"] for r in rs if r.get("divergence_frame", -1) >= 0]
        return {
            "n": n,
            "implausible": float(np.mean([not r["plausible"] for r in rs])) if n else float("nan"),
            "unfaithful": float(np.mean([not r["faithful"] for r in rs])) if n else float("nan"),
            "causes": dict(sorted(causes.items())),
            "fidelity_causes": dict(sorted(fcauses.items())),
            "divergence_frame_median": float(np.median(div)) if div else None,
        }

    out = one(rows)
    by_split: dict[str, list] = {}
    by_level: dict[str, list] = {}
    for r in rows:
        by_split.setdefault(str(r["split"]), []).append(r)
        by_level.setdefault(f"{r['split']}/{r['level']}", []).append(r)
    out["splits"] = {k: one(v) for k, v in sorted(by_split.items())}
    out["levels"] = {k: one(v) for k, v in sorted(by_level.items())}
    return out


def row_of(record, verdict: dict) -> dict:
    """A flat per-video row of :func:`judge_video`'s output."""
    p, f = verdict["plausibility"], verdict["fidelity"] or {}
    return {
        "id": record.id, "split": record.split, "level": record.level,
        "plausible": p["plausible"], "causes": p["causes"],
        "faithful": f.get("faithful", True), "fidelity_causes": f.get("causes", []),
        "divergence_frame": f.get("divergence_frame", -1),
        "position_error_max": f.get("position_error_max", float("nan")),
        "velocity_error": f.get("velocity_error", float("nan")),
        "preset": verdict["preset"],
        "stats": {k: v for k, v in p["stats"].items() if isinstance(v, int | float)},
    }  # fmt: skip




# --------------------------------------------------------------------------- CLI


def score_dir(gen, truth_dir, *, split: str | None = None, preset: str = "auto",
              frames: str = "full", allow_missing: bool = False,
              progress: bool = False) -> dict:  # fmt: skip
    """Judge every generated video of ``gen`` (folder or HDF5, see :mod:`evals.inputs`)
    against the truth dataset ``truth_dir``. Reads files, writes nothing.

    Args:
      frames: ``full`` (videos hold every frame) or ``rollout`` (only the generated ones;
        the truth's conditioning frames are put in front).

    Returns:
      ``{"config", "summary" (:func:`summarize`), "videos" (rows of :func:`row_of`)}``.

    Raises:
      ValueError (``EvalInputError``) naming missing, unknown or unreadable videos, frames
      of the wrong count or size, or a bad option.
    """
    import physim.dataset
    from evals.inputs import EvalInputError, discover, paper_name_ids, read_video

    if frames not in ("full", "rollout"):
        raise EvalInputError(f"unknown frames mode {frames!r}; known: ['full', 'rollout']")
    if preset != "auto":
        resolve_config(preset)
    try:
        ds = physim.dataset.open(truth_dir, split=split)
    except (OSError, ValueError) as e:
        raise EvalInputError(f"truth {truth_dir}: {e}") from None
    ids = list(ds.ids)
    sources = discover(gen, ids)
    # The paper's {chunk:05d}-{local:05d} names number the videos of one split.
    renamed = paper_name_ids(list(sources), ids, n_splits=len(ds.splits))
    sources = {renamed.get(k, k): v for k, v in sources.items()}
    unknown = sorted(set(sources) - set(ids))
    if unknown:
        raise EvalInputError(f"{gen}: {len(unknown)} videos match no truth id, e.g. {unknown[:5]}")
    missing = [i for i in ids if i not in sources]
    if missing and not allow_missing:
        raise EvalInputError(f"{gen}: {len(missing)} truth videos have no generated video, e.g. "
                             f"{missing[:5]} (--allow-missing scores what is there)")  # fmt: skip
    laws = laws_for(ds.spec) if ds.spec is not None else None
    rows = []
    for n, vid in enumerate(i for i in ids if i in sources):
        idx = ds.index(vid)
        rec = ds[idx]
        v = read_video(sources[vid], with_luma=True)
        f, luma = v.frames, v.luma
        t_true, n_cond = rec.trajectory.n_frames, int(rec.n_cond)
        want = t_true - n_cond if frames == "rollout" else t_true
        if f.ndim != 4 or f.shape[0] != want or f.shape[1] != f.shape[2] or f.shape[1] < 16:
            raise EvalInputError(f"{sources[vid].what}: frames {f.shape}, expected {want} square "
                                 f"frames of at least 16 px (--frames {frames})")  # fmt: skip
        truth_frames = ds.frames(idx, resolution=f.shape[1])
        if frames == "rollout":
            f = np.concatenate([truth_frames[:n_cond], f])
            luma = None
        verdict = judge_video(np.ascontiguousarray(f), rec, laws, config=preset, luma=luma,
                              truth_frames=truth_frames)  # fmt: skip
        rows.append(row_of(rec, verdict))
        if progress and n % 50 == 0:
            print(f"{n + 1} videos judged", flush=True)
    if not rows:
        raise EvalInputError(f"{gen}: no video to judge")
    return {"config": {"gen": str(gen), "truth": str(truth_dir), "split": split,
                       "preset": preset, "frames": frames, "missing": len(missing),
                       "laws": dataclasses.asdict(laws) if laws else None},
            "summary": summarize(rows), "videos": rows}  # fmt: skip


def summary_markdown(result: dict) -> str:
    """Markdown of a :func:`score_dir` result: per split and level, both verdicts."""

    def pct(x):
        return "–" if x is None or x != x else f"{100 * x:.1f}%"

    s = result["summary"]
    lines = ["## Physics judge", "", f"Generated `{result['config']['gen']}` against truth "
             f"`{result['config']['truth']}`: {s['n']} videos.", "",
             "| group | n | implausible | causes | unfaithful | fidelity causes |",
             "|---|---:|---:|---|---:|---|"]  # fmt: skip
    groups = [("all", s)] + list(s["splits"].items()) + list(s["levels"].items())
    for name, g in groups:
        causes = ", ".join(f"{c} {pct(v)}" for c, v in g["causes"].items()) or "–"
        fc = ", ".join(f"{c} {pct(v)}" for c, v in g["fidelity_causes"].items()) or "–"
        lines.append(f"| {name} | {g['n']} | {pct(g['implausible'])} | {causes} | "
                     f"{pct(g['unfaithful'])} | {fc} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _write_text(path, text: str) -> None:
    import os

    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_result(out, result: dict, markdown: str, stem: str) -> None:
    """``OUT/{stem}.json`` and ``OUT/{stem}.md`` (each written to a temp name, renamed)."""
    import json
    from pathlib import Path

    from evals.core import json_clean

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / f"{stem}.json", json.dumps(json_clean(result), indent=1) + "\n")
    _write_text(out / f"{stem}.md", markdown)


def main(argv=None) -> int:
    """``python -m evals.judge score GEN --truth EVALDIR --out OUT`` and
    ``python -m evals.judge calibrate --scenario S --n N --resolution R --out DIR``."""
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="python -m evals.judge", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sc = sub.add_parser("score", help="judge generated videos against a truth dataset")
    sc.add_argument("gen", help="folder of {id}.npy/.npz/.mp4 videos, or a paper HDF5 file")
    sc.add_argument("--truth", required=True, help="truth dataset folder")
    sc.add_argument("--out", required=True, help="output folder (judge.json, judge.md)")
    sc.add_argument("--split", default=None)
    sc.add_argument("--preset", default="auto", help="auto | exact | lossy")
    sc.add_argument("--frames", default="full", help="full | rollout")
    sc.add_argument("--allow-missing", action="store_true")
    ca = sub.add_parser("calibrate", help="judge our own positive and negative controls")
    ca.add_argument("--scenario", required=True)
    ca.add_argument("--n", type=int, required=True, help="truth videos per control family")
    ca.add_argument("--resolution", type=int, default=128)
    ca.add_argument("--out", required=True, help="output folder (calibration-*.json, .md)")
    ca.add_argument("--seed", type=int, default=0)
    ca.add_argument("--split", default="train")
    ca.add_argument("--families", default=None, help="comma-separated (default: all that apply)")
    ca.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                    help="scenario override, e.g. --set templates=6")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "score":
            res = score_dir(args.gen, args.truth, split=args.split, preset=args.preset,
                            frames=args.frames, allow_missing=args.allow_missing, progress=True)
            write_result(args.out, res, summary_markdown(res), "judge")
            print(summary_markdown(res))
        else:
            from evals import controls

            overrides = {}
            for kv in args.set:
                key, sep, val = kv.partition("=")
                if not sep:
                    raise ValueError(f"--set wants KEY=VALUE, got {kv!r}")
                overrides[key] = json.loads(val)
            fams = args.families.split(",") if args.families else None
            res = controls.calibrate(args.scenario, args.n, args.resolution, seed=args.seed,
                                     split=args.split, families=fams, overrides=overrides,
                                     progress=True)  # fmt: skip
            md = controls.confusion_markdown(res)
            write_result(args.out, res, md, f"calibration-{args.scenario}-{args.resolution}")
            print(md)
    except (ValueError, KeyError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
