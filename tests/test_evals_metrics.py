"""Video metrics, attribute priority, case retrieval and the bench's reference parse."""

import dataclasses

import numpy as np
import pytest

import physim
from evals import attributes, bench, cases, laws, parse
from evals import video_metrics as vm
from physim import world
from physim.render import render

RES = 64


def _video(name="uniform", index=3, split="id"):
    rec = physim.scenario(name).sample(seed=5, split=split, index=index)
    return rec, render(rec.trajectory, rec.objects, RES)


def test_psnr_ssim_closed_form():
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] += 10  # MSE = (10/255)² / 3
    expect = -10 * np.log10((10 / 255) ** 2 / 3)
    np.testing.assert_allclose(vm.psnr(a, b), expect, rtol=1e-5)
    assert np.allclose(vm.ssim(a, a), 1.0, atol=1e-4)  # float32
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, a.shape).astype(np.uint8)
    assert float(vm.ssim(noise, a).mean()) < 0.2


def test_sliced_filter_equals_the_convolution():
    rng = np.random.default_rng(1)
    x = rng.random((3, 40, 37, 3)).astype(np.float32)
    for g in (vm._gauss(11, 1.5), vm._gauss(5, 1.1)):
        a, b = vm._filter_valid(x, g), vm._filter_valid_conv(x, g)
        assert a.shape == b.shape == (3, 41 - len(g), 38 - len(g), 3)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)
    # Negative control: a shifted kernel is not the same filter.
    g = vm._gauss(11, 1.5)
    shifted = np.asarray(vm._filter_valid(x, np.roll(g, 1)))
    assert np.abs(shifted - np.asarray(vm._filter_valid_conv(x, g))).max() > 1e-3


def test_separable_morphology_equals_reduce_window():
    rng = np.random.default_rng(2)
    m = (rng.random((3, 23, 19)) > 0.6).astype(np.float32)
    for op in (vm.jax.lax.min, vm.jax.lax.max):
        np.testing.assert_array_equal(np.asarray(vm._morph(m, op)),
                                      np.asarray(vm._morph_window(m, op)))
    # Negative control: a 3x3 square is another operator.
    assert not np.array_equal(np.asarray(vm._morph(m, vm.jax.lax.max, 3)),
                              np.asarray(vm._morph_window(m, vm.jax.lax.max)))


def test_motion_scores_controls():
    rec, frames = _video()
    same = vm.motion_scores(frames, frames)
    assert all(float(v) == 1.0 for v in same.values())
    frozen = frames.copy()
    frozen[3:] = frames[2]
    s = vm.video_scores(frames, frozen, rec.n_cond)
    assert s["spatiotemporal_iou"] < 0.5 and s["weighted_spatial_iou"] < 0.5
    assert s["psnr"] < 40 and s["ssim"] < 1.0
    assert vm.video_scores(frames, frames, rec.n_cond)["psnr"] == 100.0


def _jax_scores(truth, gen, n_cond):
    """The metrics' definitions in JAX (video_metrics.psnr / ssim / motion_scores)."""
    t, g = truth[n_cond:], gen[n_cond:]
    out = {"psnr": float(np.mean(np.minimum(np.asarray(vm.psnr(t, g)), 100.0))),
           "ssim": float(np.mean(vm.ssim(t, g))),
           "mse": float(np.mean((t / 255.0 - g / 255.0) ** 2))}
    out.update({k: float(v) for k, v in vm.motion_scores(truth, gen).items()})
    return out


def test_kernel_scores_equal_the_jax_definitions():
    from evals import video_kernels as vk

    rec, frames = _video()
    rng = np.random.default_rng(3)
    noisy = np.clip(frames + rng.normal(0, 12, frames.shape), 0, 255).astype(np.uint8)
    frozen = frames.copy()
    frozen[3:] = frames[2]
    for gen in (noisy, frozen, frames[:, ::-1].copy()):
        fast, ref = vm.video_scores(frames, gen, rec.n_cond), _jax_scores(frames, gen, rec.n_cond)
        assert fast.keys() == ref.keys()
        for k in ref:
            assert fast[k] == pytest.approx(ref[k], rel=2e-5, abs=2e-6), k
        # The masks themselves, pixel for pixel.
        ref_masks = np.asarray(vm.motion_masks(gen))
        for x in (gen, gen / np.float32(255)):  # uint8 and float frames
            rows, div = vm._rows(x)
            masks = vk.motion_masks(rows, np.asarray(vm._gauss(5, 1.1)),
                                    np.float32(vm.MOTION_ALPHA), np.float32(vm.MOTION_THRESHOLD),
                                    div)
            np.testing.assert_array_equal(masks, ref_masks)
    # Float input in [0, 1] scores as its uint8 source.
    f = vm.video_scores(frames / 255.0, noisy / 255.0, rec.n_cond)
    assert f["ssim"] == pytest.approx(vm.video_scores(frames, noisy, rec.n_cond)["ssim"], rel=1e-5)
    # Negative control: another video is not scored as the truth.
    assert vm.video_scores(frames, noisy, rec.n_cond)["ssim"] < 0.99


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3))
    assert vm.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # Shift by (1, 0, 0): distance |Δμ|² = 1.
    assert vm.frechet_distance(x, x + [1, 0, 0]) == pytest.approx(1.0, abs=0.05)


def _attr_tracks(rec, frames):
    names = attributes.candidate_colors(rec)
    rgb = np.stack([world.color_rgb(c) for c in names])
    return parse.parse(frames, rgb), names


def test_attribute_outcomes_and_priority():
    rec = physim.scenario("color_shape").sample(seed=5, split="ood", index=2)
    frames = render(rec.trajectory, rec.objects, RES)
    tr, names = _attr_tracks(rec, frames)
    kept = attributes.video_attributes(tr, rec, names)
    assert kept["kept_a"] and kept["kept_b"]  # the truth keeps both
    # A model that keeps the colour but morphs the shape (the paper's colour > shape).
    other = "ball" if rec.objects.shapes[0] == "square" else "square"
    morphed = dataclasses.replace(rec.objects, shapes=(other,))
    g = render(rec.trajectory, morphed, RES)
    g[: rec.n_cond] = frames[: rec.n_cond]
    out = attributes.video_attributes(_attr_tracks(rec, g)[0], rec, names)
    assert out["kept_a"] and not out["kept_b"]
    row = {"split": "ood", **out}
    pr = attributes.priority([row, row, {"split": "ood", **kept}])
    assert pr["counts"]["color>shape"] == 2 and pr["order"][0] == "color"


def test_case_retrieval_closer_to_case():
    spec = physim.scenario("uniform")
    train = [spec.sample(seed=5, split="id", index=i) for i in range(0, 160, 7)]
    bank = cases.CaseBank(
        np.stack([cases._vector(attributes.truth_attributes(r)) for r in train]),
        [cases._key(attributes.truth_attributes(r)) for r in train],
    )
    rec = physim.scenario("uniform").sample(seed=5, split="ood", index=300)
    truth = attributes.truth_attributes(rec)
    assert cases.case_score(truth, truth, bank)["closer_to_case"] == 0.0
    # A generation that copies a training case's velocity sits on that case.
    copy = dict(truth, velocity=attributes.truth_attributes(train[3])["velocity"],
                radius=train[3].objects.radii)  # fmt: skip
    s = cases.case_score(copy, truth, bank)
    assert s["closer_to_case"] == 1.0 and s["d_case"] == pytest.approx(0.0, abs=1e-9)


def test_bench_reference_parse_is_coarse_but_right():
    rec, frames = _video(index=10)
    ref = bench.numpy_reference(frames[None])[0]
    vec = bench.numpy_reference_vectorized(frames[None])[0]
    np.testing.assert_allclose(ref, vec, atol=1e-9)
    inside = laws.inside_box(rec.trajectory.positions, rec.objects.radii)
    err = np.abs(ref - rec.trajectory.positions)[inside]
    assert err.max() < 0.2  # within a pixel or so at 64²


def test_judge_metric_rates_truth_plausible_and_a_frozen_rollout_not(tmp_path):
    from evals import evaluate_arrays

    d = tmp_path / "truth"
    physim.dataset.generate("uniform", split="id", n=6, seed=0, out=d, progress=False)
    ds = physim.dataset.open(d)
    truth = {vid: ds.frames(i, resolution=RES) for i, vid in enumerate(ds.ids)}
    frozen = {}
    for vid, f in truth.items():
        g = f.copy()
        g[3:] = f[2]  # copy-last: the ball stops after the conditioning frames
        frozen[vid] = g
    ok = evaluate_arrays(truth, str(d), metrics=["judge"])
    bad = evaluate_arrays(frozen, str(d), metrics=["judge"])
    assert ok["implausible"] == 0.0 and ok["unfaithful"] == 0.0
    assert bad["implausible"] == 1.0 and bad["implausible_inertia"] == 1.0
    assert bad["unfaithful"] == 1.0 and bad["implausible_vanish"] == 0.0
    assert set(ok["splits"]) == {"id"} and "implausible" in ok["splits"]["id"]


@pytest.mark.parametrize("w", [5, 64, 100, 130])
def test_packed_morphology_equals_reduce_window(w):
    """The kernels' bit-packed erosion and dilation (rows of any width, several words, a
    partial last word) against jax.lax.reduce_window."""
    import jax

    from evals import video_kernels as vk

    rng = np.random.default_rng(w)
    m = (rng.random((3, 9, w)) < 0.6).astype(np.uint8)
    m[1] = 1  # a full frame: erosion must treat outside the frame as neutral
    nw = (w + 63) // 64
    padded = np.zeros((3, 9, nw * 64), np.uint8)
    padded[..., :w] = m
    packed = np.packbits(padded, axis=-1, bitorder="little").view("<u8").copy()
    for is_max, op in ((True, jax.lax.max), (False, jax.lax.min)):
        out = vk._extreme(packed, w, 5, is_max)
        got = np.unpackbits(out.view(np.uint8), axis=-1, bitorder="little")
        assert not got[..., w:].any()  # bits past the row stay 0
        ref = np.asarray(vm._morph_window(m.astype(np.float32), op)) > 0.5
        np.testing.assert_array_equal(got[..., :w].astype(bool), ref)
    # Negative control: the two operations differ on this input.
    assert not np.array_equal(vk._extreme(packed, w, 5, True), vk._extreme(packed, w, 5, False))
