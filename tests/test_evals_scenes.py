"""Scene abnormality checks (evals.scenes): truth renders are clean, each corruption is
caught by its check, and the pixel tools underneath are exact."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

import physim
from evals import scene_checks, scenes
from evals import scene_parse as sp
from physim.geometry import Geometry
from physim.render import render_bodies
from physim.scenarios.combinatorial import bodies_of, geometry, render

R = 64  # tiny frames: a static chain ball is 1.3 px in radius, a bar 1.3 px thick
K = 12  # corruptions start at this frame
SPEC = physim.scenario("combinatorial", templates=60)


# --------------------------------------------------------------------------- helpers


def _find(pred, split="train", seed=7, start=0):
    """The first record of ``split`` (indices from ``start``) that satisfies ``pred``."""
    for i in range(start, start + 400):
        rec = SPEC.sample(seed, split, i)
        if pred(rec):
            return rec
    raise AssertionError("no record found")


def _dyn(rec, kind=None, color="phyre_gray"):
    return [i for i, b in enumerate(rec.extra["bodies"])
            if not b["static"] and b["color"] == color and kind in (None, b["kind"])]  # fmt: skip


def _static_bar(rec):
    return [i for i, b in enumerate(rec.extra["bodies"]) if b["static"] and b["kind"] == "bar"]


def _geom(rec, edit=None):
    """The record's geometry with body j redrawn by ``edit[j](body) -> [(kind, args)]``
    (``("circle", (radius, colour, centre))`` or ``("poly", (verts, colour))``)."""
    edit = edit or {}
    g = Geometry.empty()
    for i, b in enumerate(bodies_of(rec)):
        if i in edit:
            prims = edit[i](b)
        else:
            prims = [("circle", (s.radius, b.color, s.offset)) if s.kind == "circle"
                     else ("poly", (s.vertices, b.color)) for s in b.shapes]  # fmt: skip
        for kind, args in prims:
            g = (
                g.add_circle(i, *args[:2], center=args[2])
                if kind == "circle"
                else g.add_polygon(i, *args)
            )
    return g


def _video(rec, geom=None, positions=None, from_frame=K, res=R):
    """Truth frames before ``from_frame``, then frames drawn with ``geom``/``positions``."""
    tr = rec.trajectory
    truth = render(rec, res)
    pos = tr.positions if positions is None else positions
    bad = render_bodies(geometry(rec) if geom is None else geom, pos, tr.angles, res)
    return np.concatenate([truth[:from_frame], bad[from_frame:]])


def _free_spot(rec, j, k, min_dist, res=R):
    """A position for body j in frame k at least ``min_dist`` from its own, where it
    overlaps no other body's pixels (one pixel apart)."""
    tr = rec.trajectory
    n = tr.n_bodies
    others = render_bodies(scenes._only(geometry(rec), np.arange(n) != j), tr.positions[k:k + 1],
                           tr.angles[k:k + 1], res)[0].min(-1) < 255  # fmt: skip
    near = sp.distance_to(others) < 2.0
    for x in np.linspace(1.0, 9.0, 17):
        for y in np.linspace(9.0, 1.0, 17):
            pos = tr.positions[k : k + 1].copy()
            if math.hypot(x - pos[0, j, 0], y - pos[0, j, 1]) < min_dist:
                continue
            pos[0, j] = (x, y)
            alone = render_bodies(scenes._only(geometry(rec), np.arange(n) == j), pos,
                                  tr.angles[k:k + 1], res)[0].min(-1) < 255  # fmt: skip
            edge = alone[0].any() or alone[-1].any() or alone[:, 0].any() or alone[:, -1].any()
            if not edge and not (alone & near).any():
                return np.array([x, y])
    raise AssertionError("no free spot")


def _flags(out):
    return {c for c in scenes.CHECKS if out[c]}


# --------------------------------------------------------------------------- positive control


def test_truth_renders_are_not_abnormal():
    recs = [SPEC.sample(3, "train", i) for i in range(12)]
    recs += [SPEC.sample(3, "in-template", 37 * i) for i in range(5)]
    recs += [SPEC.sample(3, "out-of-template", 53 * i + 1) for i in range(7)]
    assert len({r.params["template"] for r in recs}) >= 12
    for rec in recs:
        out = scenes.check_video(render(rec, R), rec)
        assert not out["abnormal"], (rec.id, rec.params, _flags(out), out)
        assert out["jump_ratio_max"] < 0.8  # the bound is not loose by accident
    # The checks do measure something on truth: objects move by a visible amount.
    assert max(scenes.check_video(render(r, R), r)["jump_ratio_max"] for r in recs[:4]) > 0.05


# --------------------------------------------------------------------------- negative controls


def test_deleted_object_vanishes():
    rec = _find(lambda r: len(_dyn(r)) >= 2)
    j = _dyn(rec)[0]
    out = scenes.check_video(_video(rec, scenes._only(geometry(rec), np.arange(
        rec.trajectory.n_bodies) != j)), rec)  # fmt: skip
    assert out["vanish"] and out["first_frame"]["vanish"] == K, _flags(out)
    assert not out["appear"] and not out["color"]


def test_duplicated_object_appears():
    rec = _find(lambda r: len(_dyn(r, "ball")) >= 1)
    j = _dyn(rec, "ball")[0]
    spot = _free_spot(rec, j, K, 1.0)
    n = rec.trajectory.n_bodies
    g = _geom(rec)  # a copy of ball j drawn on an extra body at a free spot
    b = bodies_of(rec)[j]
    g = g.add_circle(n, b.shapes[0].radius, b.color)
    pos = np.concatenate([rec.trajectory.positions, np.broadcast_to(spot, (32, 1, 2))], axis=1)
    tr = rec.trajectory
    bad = render_bodies(g, pos, np.concatenate([tr.angles, np.zeros((32, 1))], 1), R)
    out = scenes.check_video(np.concatenate([render(rec, R)[:K], bad[K:]]), rec)
    assert out["appear"] and out["first_frame"]["appear"] == K, _flags(out)
    assert not out["vanish"]


def test_teleported_object_jumps():
    rec = _find(lambda r: len(_dyn(r, "ball")) >= 1)
    j = _dyn(rec, "ball")[0]
    ref = scenes.reference(rec, R)
    far = 1.3 * ref.jump_px * 10 / R
    spot = _free_spot(rec, j, K, far)
    pos = rec.trajectory.positions.copy()
    pos[K:, j] += spot - pos[K, j]
    out = scenes.check_video(_video(rec, positions=pos), rec)
    assert out["jump"] and out["first_frame"]["jump"] == K, _flags(out)
    assert not (out["vanish"] or out["appear"] or out["shape"] or out["color"])


def test_color_swap_is_a_color_change():
    rec = _find(lambda r: len(_dyn(r)) >= 1)
    red = _dyn(rec, color="phyre_red")[0]
    ref = scenes.reference(rec, R)
    j = max(_dyn(rec), key=lambda i: abs(ref.area[i] - ref.area[red]))

    def recolor(new):
        def f(b):
            return [("circle", (s.radius, new, s.offset)) if s.kind == "circle"
                    else ("poly", (s.vertices, new)) for s in b.shapes]  # fmt: skip

        return f

    g = _geom(rec, {j: recolor("phyre_red"), red: recolor("phyre_gray")})
    out = scenes.check_video(_video(rec, g), rec)
    assert out["color"] and out["first_frame"]["color"] == K, _flags(out)
    assert not (out["vanish"] or out["appear"])


@pytest.mark.parametrize("how", ["shrink", "stretch"])
def test_deformed_object_changes_shape(how):
    rec = _find(lambda r: len(_dyn(r, "ball")) >= 1)
    j = _dyn(rec, "ball")[0]

    def edit(b):
        r = b.shapes[0].radius
        if how == "shrink":
            return [("circle", (0.6 * r, b.color, (0.0, 0.0)))]
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)  # same area, axes 1.6 r and r / 1.6
        return [("poly", (np.stack([1.6 * r * np.cos(a), r / 1.6 * np.sin(a)], -1), b.color))]

    out = scenes.check_video(_video(rec, _geom(rec, {j: edit})), rec)
    # (While the ball touches another gray object they form one blob, whose moments say
    # nothing; its area still does, so a shrink is caught at once, a stretch a bit later.)
    first = out["first_frame"].get("shape")
    assert out["shape"] and (first == K if how == "shrink" else K <= first <= K + 5), _flags(out)
    assert not (out["vanish"] or out["appear"] or out["color"] or out["jump"])


def test_object_moved_into_static_bar_penetrates():
    rec = _find(lambda r: bool(_static_bar(r)))
    s = _static_bar(rec)[0]
    red = _dyn(rec, color="phyre_red")[0]
    pos = rec.trajectory.positions.copy()
    pos[K:, red] = pos[0, s]  # the action ball sits on the bar's centre
    out = scenes.check_video(_video(rec, positions=pos), rec)
    assert out["penetration"] and out["first_frame"]["penetration"] == K, _flags(out)
    assert out["overlap_max"] > 1.0


def test_object_on_far_side_of_static_bar_tunnels():
    def fits(r):
        if not _static_bar(r):
            return False
        s, red = _static_bar(r)[0], _dyn(r, color="phyre_red")[0]
        rad = r.extra["bodies"][red]["shapes"][0]["radius"]
        if rad < 0.25:  # a ball at least 1.6 px in radius
            return False
        a = r.extra["bodies"][s]["angle"]
        n = np.array([-math.sin(a), math.cos(a)])
        p = np.asarray(r.extra["bodies"][s]["position"])
        ends = [p + sgn * n * (0.1 + rad + 0.1) for sgn in (1, -1)]
        return all(rad + 0.1 < e[i] < 9.9 - rad for e in ends for i in range(2))

    rec = _find(fits)
    s, red = _static_bar(rec)[0], _dyn(rec, color="phyre_red")[0]
    rad = rec.extra["bodies"][red]["shapes"][0]["radius"]
    a = rec.extra["bodies"][s]["angle"]
    n = np.array([-math.sin(a), math.cos(a)])
    p = np.asarray(rec.extra["bodies"][s]["position"])
    pos = rec.trajectory.positions.copy()
    pos[K - 3 : K, red] = p + n * (0.2 + rad)  # resting on the bar (0.1 above it) ...
    pos[K:, red] = p - n * (0.2 + rad)  # ... then under it, never overlapping it
    out = scenes.check_video(_video(rec, positions=pos, from_frame=K - 3), rec)
    assert K in out["frames"].get("penetration", []), _flags(out)
    assert K - 1 not in out["frames"]["penetration"]  # resting above is fine
    assert out["overlap_max"] < 0.5  # caught by the crossing, not by overlap


def test_deleted_static_object_is_flagged():
    rec = _find(lambda r: any(b["static"] for b in r.extra["bodies"]))
    s = [i for i, b in enumerate(rec.extra["bodies"]) if b["static"]][0]
    g = scenes._only(geometry(rec), np.arange(rec.trajectory.n_bodies) != s)
    out = scenes.check_video(_video(rec, g), rec)
    assert out["static"] and out["first_frame"]["static"] == K, _flags(out)


# --------------------------------------------------------------------------- lossy inputs


def test_lossy_preset_on_mp4_round_trips():
    """H.264 (yuv420) shifts the light gray towards "a fifth of black" and smears chroma;
    the lossy preset keeps truth clean and still catches corruptions."""
    from physim.video import decode_mp4, encode_mp4

    res = 128

    def mp4(v):
        return decode_mp4(encode_mp4(v))

    for i in range(3):
        rec = SPEC.sample(5, "out-of-template", 17 * i)
        exact = scenes.check_video(mp4(render(rec, res)), rec)
        lossy = scenes.check_video(mp4(render(rec, res)), rec, "lossy")
        assert not lossy["abnormal"], (rec.id, _flags(lossy))
    assert exact["abnormal"]  # the exact preset is not meant for lossy frames
    rec = _find(lambda r: len(_dyn(r, "ball")) >= 1)
    j = _dyn(rec, "ball")[0]
    n = rec.trajectory.n_bodies
    deleted = _video(rec, scenes._only(geometry(rec), np.arange(n) != j), res=res)
    far = 1.3 * scenes.reference(rec, res).jump_px * 10 / res
    pos = rec.trajectory.positions.copy()
    pos[K:, j] += _free_spot(rec, j, K, far, res) - pos[K, j]
    for video, check in ((deleted, "vanish"), (_video(rec, positions=pos, res=res), "jump")):
        out = scenes.check_video(mp4(video), rec, "lossy")
        assert out["first_frame"].get(check) == K, (check, _flags(out))


# --------------------------------------------------------------------------- scores


def test_score_groups_splits_and_video_metrics_order():
    recs = [SPEC.sample(4, "in-template", 3), SPEC.sample(4, "out-of-template", 5),
            SPEC.sample(4, "out-of-template", 9)]  # fmt: skip
    truth = [render(r, R) for r in recs]
    rng = np.random.default_rng(0)
    noisy = [np.clip(v + rng.normal(0, 20, v.shape), 0, 255).astype(np.uint8) for v in truth]
    same = scenes.score(truth, recs)
    assert set(same["splits"]) == {"in-template", "out-of-template"}
    assert same["splits"]["out-of-template"]["n"] == 2
    for s in same["splits"].values():
        assert s["abnormal"] == 0.0 and s["psnr"] == 100.0 and s["ssim"] == pytest.approx(1.0)
    worse = scenes.score(noisy, recs, metrics=("psnr", "ssim"), config="lossy")
    for s in worse["splits"].values():
        assert s["psnr"] < 30.0 and s["ssim"] < 0.9
    with pytest.raises(ValueError, match="need 600"):
        scenes.score(truth, recs, counts=scenes.PAPER_COUNTS)
    only = scenes.score(truth, recs, metrics=(), counts={"out-of-template": 1})
    assert only["splits"]["out-of-template"]["n"] == 1 and "psnr" not in only["videos"][0]


# --------------------------------------------------------------------------- pixel tools


def test_memberships_split_mixed_pixels():
    cols = np.array([[0, 0, 0], [0xB9, 0xCA, 0xD2], [0xF3, 0x4F, 0x46]], np.uint8)
    bg = np.array([255.0, 255.0, 255.0])
    px = []
    for a in [(0.3, 0.0, 0.0), (0.0, 1.0, 0.0), (0.4, 0.5, 0.0), (0.0, 0.25, 0.7)]:
        px.append(bg + sum(ai * (c - bg) for ai, c in zip(a, cols.astype(float), strict=True)))
    px.append([0, 0, 255])  # blue: no palette colour explains it
    frame = np.round(np.array(px)).astype(np.uint8).reshape(1, 1, 5, 3)
    frame = np.pad(frame, ((0, 0), (0, 4), (0, 0), (0, 0)), constant_values=255)
    m = sp.memberships(frame, cols, res_tol=3.0)
    got = m.memb[0, 0, :4]
    # (gray is nearly a shade of black, so a black + gray pair is ill-conditioned: uint8
    # rounding moves its split by ~0.02)
    np.testing.assert_allclose(got, [[0.3, 0, 0], [0, 1, 0], [0.4, 0.5, 0], [0, 0.25, 0.7]],
                               atol=0.03)  # fmt: skip
    assert m.unknown[0, 0, 4] == 1.0 and m.unknown[0, 0, :4].max() == 0.0
    with pytest.raises(ValueError, match="distinct"):
        sp.memberships(frame, np.array([[0, 0, 0], [0, 0, 0]], np.uint8))


def test_blob_moments_of_rendered_shapes():
    g = Geometry.empty().add_circle(0, 1.0, "phyre_gray").add_rect(1, 4.0, 0.5, "phyre_gray")
    frame = render_bodies(g, np.array([[[3.0, 3.0], [6.5, 7.0]]]), np.array([[0.0, 0.7]]), 128)
    w = sp.memberships(frame, np.array([[0xB9, 0xCA, 0xD2]], np.uint8)).memb[0, ..., 0]
    b = sp.blobs(w)
    s = 128 / 10  # px per world unit
    order = np.argsort(b.area)
    np.testing.assert_allclose(b.area[order], [2.0 * s**2, math.pi * s**2], rtol=2e-3)
    disc, bar = order[1], order[0]
    np.testing.assert_allclose(b.extents[disc], [0.5 * s, 0.5 * s], rtol=5e-3)  # r / 2
    np.testing.assert_allclose(b.extents[bar], [4 / 12**0.5 * s, 0.5 / 12**0.5 * s], rtol=2e-2)
    np.testing.assert_allclose(b.centroid[disc], [3.0 * s, 7.0 * s], atol=1e-2)


def test_distance_transform_matches_brute_force():
    rng = np.random.default_rng(1)
    for p in (0.01, 0.1, 0.5):
        mask = rng.random((19, 23)) < p
        mask[3, 4] = True
        pts = np.argwhere(mask)
        grid = np.argwhere(np.ones_like(mask))
        ref = np.sqrt(((grid[:, None] - pts[None]) ** 2).sum(-1)).min(1).reshape(mask.shape)
        np.testing.assert_allclose(sp.distance_to(mask), ref)
    assert np.isinf(sp.distance_to(np.zeros((4, 4), bool))).all()


def test_account_matches_blobs_to_object_sets():
    cfg = scenes.SceneConfig()
    area = np.array([40.0, 20.0, 10.0])
    ext = np.array([[2.0, 2.0], [3.0, 0.5], [1.0, 1.0]])

    def blobs(areas, exts):
        n = len(areas)
        z = np.zeros(n)
        a, e = np.array(areas, float), np.array(exts, float)
        return sp.Blobs(np.zeros((2, 2), np.int32), a, np.zeros((n, 2)), e, z, z)

    def account(areas, exts):
        return scene_checks._account(blobs(areas, exts), area, ext, cfg)

    # Object 0 alone, objects 1 + 2 touching (one blob): all accounted for.
    assert account([40, 30], [[2, 2], [3, 1]]) == (0, 0, 0, {0: 0})
    # Object 2 missing: vanished; an extra blob: appeared; a stretched object: misshapen.
    assert account([40, 20], [[2, 2], [3, 0.5]])[:3] == (1, 0, 0)
    assert account([40, 20, 10, 25], [[2, 2], [3, 0.5], [1, 1], [2, 2]])[:3] == (0, 1, 0)
    assert account([40, 20, 10], [[2, 2], [3, 0.5], [2, 0.5]])[:3] == (0, 0, 1)
    # A shrunk object (area 6 of 10) is misshapen, not vanished.
    assert account([40, 20, 6], [[2, 2], [3, 0.5], [0.8, 0.8]])[:3] == (0, 0, 1)


def test_bad_inputs_raise():
    rec = SPEC.sample(0, "train", 0)
    with pytest.raises(ValueError, match="frames"):
        scenes.check_video(np.zeros((5, R, R, 3), np.uint8), rec)
    with pytest.raises(ValueError, match="unknown scene config"):
        scenes.check_video(render(rec, R), rec, "nope")
    basic = physim.scenario("uniform").sample(0, "train", 0) if hasattr(
        physim.scenario("uniform"), "sample") else None  # fmt: skip
    if basic is not None:
        with pytest.raises(ValueError, match="bodies"):
            scenes.reference(basic, R)
    with pytest.raises(ValueError, match="unknown metrics"):
        scenes.score([render(rec, R)], [dataclasses.replace(rec, split="in-template")],
                     metrics=("fid",))  # fmt: skip
