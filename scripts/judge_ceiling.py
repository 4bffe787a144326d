"""How far the rigid wrong-physics controls are from their truths, and whether the law
they break shows at our frame rate (docs/judge.md, "What pixels can show").

For the combinatorial controls ``restitution_0``, ``masses_swapped`` and ``friction_0``
(re-simulated by :func:`evals.controls.scene_resim`, as ``calibrate`` makes them), per
truth, from the simulator's states (no pixels: a ceiling for any pixel judge):

- ``move``: the largest displacement of any point of any dynamic body between truth and
  control (world units; a ball's centre, a polygon's vertices) and the first frame where
  it reaches 1 px at 128 and 256 px: what a judge that has the truth could see;
- ``hops`` (restitution): each impact of a dynamic ball on a static surface (a wall or a
  static body), its normal speed, and the highest point at a frame time of the hop that
  restitution 0.2 gives it; ``isolated`` when the ball flew free the interval before and
  touched nothing else from a frame before the impact until a frame after the hop. In
  the truth ``moved`` (how far it rose along the normal in the next two frames) checks
  the prediction; in the control (e = 0) it is what a judge must find missing;
- ``clean`` / ``stages`` (masses): contacts of a re-weighted body with another dynamic
  body where both fly free the interval before and after and the pair keeps its momentum
  (no third body or surface took part), the only contacts where momentum with area-based
  masses can be weighed; ``ledger``: the largest gain of the mechanical energy computed
  with area-based masses (one density) over its start, in units of centre-of-mass height
  (a lawful scene from rest never gains);
- ``glide`` (friction): 4-interval windows where a body that cannot roll (bar, jar,
  sticks) moves level at >= 0.5 units/s with a horizontal acceleration below 0.5 units/s²
  without turning, in truth and control.

    python scripts/judge_ceiling.py --n 100 --seed 0 --out runs/judge/ceiling-s0.json
    python scripts/judge_ceiling.py --summary runs/judge/ceiling-s0.json runs/judge/ceiling-s1.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

FAMILIES = ("restitution_0", "masses_swapped", "friction_0")
E_LAW = 0.2  # the combinatorial scenes' restitution


def body_points(bodies) -> list[np.ndarray]:
    """Per body, (P, 2) body-frame points whose motion bounds the drawn body's (a ball's
    turning does not show)."""
    out = []
    for b in bodies:
        pts = []
        for sh in b.shapes:
            pts += [sh.offset] if sh.kind == "circle" else list(sh.vertices)
        out.append(np.asarray(pts, np.float64))
    return out


def world_points(tr, pts: np.ndarray, i: int) -> np.ndarray:
    """(T, P, 2) world positions of body i's points."""
    c, s = np.cos(tr.angles[:, i]), np.sin(tr.angles[:, i])
    x = c[:, None] * pts[:, 0] - s[:, None] * pts[:, 1]
    y = s[:, None] * pts[:, 0] + c[:, None] * pts[:, 1]
    return np.stack([x, y], -1) + tr.positions[:, i, None]


def cog_states(tr, cogs: np.ndarray, i: int):
    """(T, 2) centre-of-gravity positions and velocities of body i."""
    c, s = np.cos(tr.angles[:, i]), np.sin(tr.angles[:, i])
    r = np.stack([c * cogs[i, 0] - s * cogs[i, 1], s * cogs[i, 0] + c * cogs[i, 1]], -1)
    w = tr.angular_velocities[:, i]
    v = tr.velocities[:, i] + np.stack([-w * r[:, 1], w * r[:, 0]], -1)
    return tr.positions[:, i] + r, v


def _closest_static(c, bodies):
    """(distance, unit normal) from a point c (2,) to the nearest static surface."""
    best = (abs(c[0]), np.array([1.0, 0.0]))
    for d, n in ((10 - c[0], np.array([-1.0, 0.0])), (c[1], np.array([0.0, 1.0])),
                 (10 - c[1], np.array([0.0, -1.0]))):  # fmt: skip
        if d < best[0]:
            best = (d, n)
    for b in bodies:
        if not b.static:
            continue
        for sh, w in zip(b.shapes, b.world_vertices(), strict=True):
            if sh.kind == "circle":
                v = c - w[0]
                cand = [(np.linalg.norm(v) - sh.radius, v)]
            else:
                cand = []
                for a0, a1 in zip(w, np.roll(w, -1, 0), strict=True):
                    e = a1 - a0
                    v = c - (a0 + np.clip((c - a0) @ e / (e @ e), 0, 1) * e)
                    cand.append((np.linalg.norm(v), v))
            d, v = min(cand, key=lambda x: x[0])
            if d < best[0]:
                best = (d, v / max(np.linalg.norm(v), 1e-12))
    return best


def ball_hops(tr, bodies, g, dt, e=E_LAW) -> list[dict]:
    out = []
    g_abs = float(np.linalg.norm(g))
    for t_i, (p, q) in zip(tr.event_times, tr.event_pairs, strict=True):
        for i, j in ((p, q), (q, p)):
            if i < 0 or bodies[i].static or bodies[i].kind != "ball":
                continue
            if j >= 0 and not bodies[j].static:
                continue
            k = int(np.floor(t_i / dt + 1e-9))  # the last frame before the impact
            if k < 0 or k + 2 >= tr.n_frames:
                continue
            tau = t_i - k * dt
            c = tr.positions[k, i] + tr.velocities[k, i] * tau + 0.5 * g * tau**2
            v = tr.velocities[k, i] + g * tau
            _, n = _closest_static(c, bodies)
            vn = float(-(v @ n))
            if vn <= 0:
                continue
            gn = float(-(g @ n))  # gravity's pull back onto the surface
            u = e * vn
            flight = 2 * u / gn if gn > 0 else np.inf
            ts = np.arange(k + 1, tr.n_frames) * dt - t_i
            ts = ts[ts < flight]
            sampled = float(np.max(u * ts - 0.5 * gn * ts**2, initial=0.0))
            moved = [float((tr.positions[k + m, i] - c) @ n) for m in (1, 2)]
            # Isolated: free flight over the interval before; no other contact from a frame
            # before the impact until a frame after the hop (its landing on the same
            # surface aside).
            same = (tr.event_pairs == i).any(1) & (tr.event_pairs == j).any(1)
            other = (tr.event_pairs == i).any(1) & (np.abs(tr.event_times - t_i) > 1e-9)
            other &= ~(same & (tr.event_times > t_i))
            until = t_i + (flight if np.isfinite(flight) else 3 * dt) + dt
            alone = not np.any(other & (tr.event_times > t_i - dt) & (tr.event_times < until))
            fly = k >= 1 and np.linalg.norm(tr.velocities[k, i] - tr.velocities[k - 1, i]
                                            - g * dt) < 0.05  # fmt: skip
            out.append({"isolated": bool(alone and fly), "floor": int(j) == -3, "frame": k,
                        "vn": vn, "cos": gn / g_abs, "sampled": sampled, "moved": moved})
    return out


def _free(v, w, g, dt, k, tol=0.05) -> bool:
    """Free flight over k -> k+1 from states (velocity changes by g dt, spin kept)."""
    return bool(np.linalg.norm(v[k + 1] - v[k] - g * dt) < tol and abs(w[k + 1] - w[k]) < tol)


def clean_contacts(tr, roll, dyn, swapped, area_mass, g, dt):
    st = {i: cog_states(tr, roll.centers_of_gravity, i) for i in dyn}
    w = tr.angular_velocities
    n_t = tr.n_frames
    stages = {"contacts": 0, "free_before": 0, "free_after": 0, "both": 0}
    for t_i, pair in zip(tr.event_times, tr.event_pairs, strict=True):
        p, q = (int(x) for x in pair)
        if q < 0 or p not in dyn or q not in dyn or not ({p, q} & set(swapped)):
            continue
        k = int(np.floor(t_i / dt + 1e-9))
        if k < 1 or k + 2 >= n_t:
            continue
        stages["contacts"] += 1
        fb = all(_free(st[b][1], w[:, b], g, dt, k - 1) for b in (p, q))
        fa = all(_free(st[b][1], w[:, b], g, dt, k + 1) for b in (p, q))
        stages["free_before"] += fb
        stages["free_after"] += fa
        stages["both"] += fb and fa
    clean = []
    for p in swapped:
        for q in dyn:
            for k in range(1, n_t - 2):
                vp, vq = st[p][1], st[q][1]
                if q == p or not all(_free(v, w[:, b], g, dt, kk) for v, b in ((vp, p), (vq, q))
                                     for kk in (k - 1, k + 1)):  # fmt: skip
                    continue
                dp, dq = vp[k + 1] - vp[k] - g * dt, vq[k + 1] - vq[k] - g * dt
                if max(np.linalg.norm(dp), np.linalg.norm(dq)) < 0.05:
                    continue  # no contact in this interval
                mp, mq = roll.masses[p], roll.masses[q]
                norm = mp * np.linalg.norm(dp) + mq * np.linalg.norm(dq)
                if np.linalg.norm(mp * dp + mq * dq) > 0.05 * norm:
                    continue  # a third body or a surface took part
                ap, aq = area_mass[p], area_mass[q]
                imb = np.linalg.norm(ap * dp + aq * dq) / (ap * np.linalg.norm(dp) +
                                                           aq * np.linalg.norm(dq))  # fmt: skip
                clean.append({"frame": k, "dv_px128": [float(np.linalg.norm(x) * 12.8 * dt)
                                                       for x in (dp, dq)],
                              "imbalance": float(imb)})  # fmt: skip
    return clean, stages


def ledger(tr, roll, dyn, area_mass, g_abs) -> float:
    """Largest gain of the energy with area-based masses (translation and turning) over
    its start, in units of centre-of-mass height."""
    e = np.zeros(tr.n_frames)
    for i in dyn:
        x, v = cog_states(tr, roll.centers_of_gravity, i)
        inertia = roll.moments[i] * area_mass[i] / roll.masses[i]
        e += area_mass[i] * (0.5 * (v**2).sum(-1) + g_abs * x[:, 1])
        e += 0.5 * inertia * tr.angular_velocities[:, i] ** 2
    return float((e - e[0]).max() / (sum(area_mass[i] for i in dyn) * g_abs))


def glide_windows(tr, bodies, dt) -> int:
    n = 0
    t = np.arange(5) * dt
    for i, b in enumerate(bodies):
        if b.static or b.kind == "ball":
            continue
        x, y = tr.positions[:, i, 0], tr.positions[:, i, 1]
        for k in range(1, tr.n_frames - 4):
            acc, v, _ = np.polyfit(t, x[k : k + 5], 2)
            level = np.ptp(y[k : k + 5]) < 0.1 * max(np.ptp(x[k : k + 5]), 1e-9)
            n += bool(abs(v + acc * t[-1]) >= 0.5 and abs(2 * acc) < 0.5 and level
                      and np.ptp(tr.angles[k : k + 5, i]) < 0.06)  # fmt: skip
    return n


def measure(n: int, seed: int) -> list[dict]:
    import physim
    from evals import controls
    from physim.scenarios.combinatorial import bodies_of

    spec = physim.scenario("combinatorial")
    g = np.asarray(spec.physics.gravity, np.float64)
    rows = []
    for rec in controls.truth_records(spec, seed, "train", n):
        bodies = bodies_of(rec)
        dyn = [i for i, b in enumerate(bodies) if not b.static]
        pts = body_points(bodies)
        area_mass = np.asarray([np.inf if m is None else m for m in rec.extra["masses"]])
        for fam in FAMILIES:
            out = controls.scene_resim(fam, rec, spec)
            if out is None:
                continue
            ctrl, roll = out
            tr, tc = rec.trajectory, ctrl.trajectory
            d = np.zeros(tr.n_frames)
            for i in dyn:
                gap = world_points(tr, pts[i], i) - world_points(tc, pts[i], i)
                d = np.maximum(d, np.linalg.norm(gap, axis=-1).max(-1))
            row = {"id": rec.id, "family": fam, "move": float(d.max())}
            for res in (128, 256):
                hit = np.nonzero(d * res / 10 >= 1.0)[0]
                row[f"first_1px_{res}"] = int(hit[0]) if hit.size else -1
            if fam == "restitution_0":
                row["hops_truth"] = ball_hops(tr, bodies, g, spec.dt)
                row["hops_ctrl"] = ball_hops(tc, bodies, g, spec.dt)
            elif fam == "masses_swapped":
                sw = [i for i in dyn if not np.isclose(roll.masses[i], area_mass[i])]
                row["ratio"] = float(max(area_mass[sw]) / min(area_mass[sw]))
                row["clean"], row["stages"] = clean_contacts(tc, roll, dyn, sw, area_mass, g,
                                                             spec.dt)  # fmt: skip
                g_abs = float(np.linalg.norm(g))
                row["ledger_truth"] = ledger(tr, roll, dyn, area_mass, g_abs)
                row["ledger_ctrl"] = ledger(tc, roll, dyn, area_mass, g_abs)
            else:
                row["glide_truth"] = glide_windows(tr, bodies, spec.dt)
                row["glide_ctrl"] = glide_windows(tc, bodies, spec.dt)
            rows.append(row)
    return rows


def summary(paths) -> str:
    lines = ["| family | seed | n | largest displacement vs truth, units: median (min-max) "
             "| >= 1 px at 128 / 256 | first frame >= 1 px, median (128) | what the law "
             "needs to show | present in |", "|---|---:|---:|---|---|---:|---|---|"]
    for fam in FAMILIES:
        for path in paths:
            rows = [r for r in json.load(open(path)) if r["family"] == fam]
            seed = path.rsplit("-s", 1)[-1].split(".")[0]
            mv = np.array([r["move"] for r in rows])
            f128 = np.array([r["first_1px_128"] for r in rows])
            f256 = np.array([r["first_1px_256"] for r in rows])
            if fam == "restitution_0":
                def seen(r, res, floor=False):
                    return any(h["isolated"] and h["cos"] >= 0.7 and (h["floor"] or not floor)
                               and h["sampled"] >= 10 / res for h in r["hops_ctrl"])  # fmt: skip
                law = "an isolated ball impact on a static surface whose e = 0.2 hop is >= 1 px" \
                    " at a frame time (on the floor), 128 / 256 px"
                have = (f"{np.mean([seen(r, 128) for r in rows]):.0%} "
                        f"({np.mean([seen(r, 128, True) for r in rows]):.0%}) / "
                        f"{np.mean([seen(r, 256) for r in rows]):.0%} "
                        f"({np.mean([seen(r, 256, True) for r in rows]):.0%})")  # fmt: skip
            elif fam == "masses_swapped":
                st = {k: sum(r["stages"][k] for r in rows) for k in rows[0]["stages"]}
                law = (f"a contact of a re-weighted body with another dynamic body, both free "
                       f"before and after, no third party ({st['contacts']} contacts: "
                       f"{st['free_before']} free before, {st['free_after']} after, "
                       f"{st['both']} both); area-mass energy gain > 0.05")
                have = (f"{np.mean([bool(r['clean']) for r in rows]):.0%}; "
                        f"{np.mean([r['ledger_ctrl'] > 0.05 for r in rows]):.0%}")
            else:
                law = "a non-rolling body gliding level at constant speed for >= 2 windows " \
                    "(truth)"
                have = (f"{np.mean([r['glide_ctrl'] >= 2 for r in rows]):.0%} "
                        f"({np.mean([r['glide_truth'] >= 2 for r in rows]):.0%})")
            lines.append(f"| {fam} | {seed} | {len(rows)} | {np.median(mv):.2f} ({mv.min():.2f}"
                         f"-{mv.max():.2f}) | {np.mean(f128 >= 0):.0%} / {np.mean(f256 >= 0):.0%}"
                         f" | {int(np.median(f128))} | {law} | {have} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="rows JSON")
    ap.add_argument("--summary", nargs="+", help="print the table of these rows files")
    a = ap.parse_args(argv)
    if a.summary:
        print(summary(a.summary))
        return 0
    with open(a.out, "w") as f:
        json.dump(measure(a.n, a.seed), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
