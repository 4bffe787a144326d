"""Renderer: exact area coverage (closed-form areas and centroids), clipping, order, errors."""

import subprocess
import sys

import numpy as np
import pytest

import physim
from physim import world
from physim.geometry import Geometry
from physim.record import Trajectory
from physim.render import render, render_bodies, render_discs_into, render_into

R = 128
S = R / world.WORLD_SIZE  # pixels per world unit


def coverage(frames, color=(255, 0, 0)):
    """Per-pixel coverage (..., H, W) of one colour drawn on white, from a channel it lacks."""
    ch = int(np.argmax(255 - np.asarray(color)))
    return (255.0 - frames[..., ch]) / (255.0 - color[ch])


def area_centroid(cov):
    """Area (px²) and centroid (col, row) in continuous pixel coordinates of a coverage map."""
    rows, cols = np.mgrid[0 : cov.shape[0], 0 : cov.shape[1]] + 0.5
    a = cov.sum()
    return a, np.array([(cov * cols).sum() / a, (cov * rows).sum() / a])


def pixel_of(xy):
    return world.world_to_pixel(np.asarray(xy), R)


def one(geom, xy, angle=0.0, resolution=R):
    return render_bodies(geom, np.array([[xy]], float), np.array([[angle]]), resolution)[0]


def test_ball_centroid_and_area_at_random_subpixel_positions():
    rng = np.random.default_rng(0)
    worst_c, worst_a = 0.0, 0.0
    for r in np.linspace(0.3, 2.0, 8):
        geom = Geometry.from_objects(world.Objects.make([r], colors=["blue"]))
        pos = rng.uniform(2.05, 7.95, size=(8, 1, 2))
        frames = render_bodies(geom, pos)
        for f, p in zip(frames, pos[:, 0], strict=True):
            a, c = area_centroid(coverage(f, world.PALETTE["blue"]))
            worst_c = max(worst_c, np.abs(c - pixel_of(p)).max())
            worst_a = max(worst_a, abs(a / (np.pi * (r * S) ** 2) - 1))
    assert worst_c <= 0.05, worst_c
    assert worst_a <= 0.01, worst_a
    # The check can fail: a 0.1 px offset of the state is seen.
    assert np.abs(c - pixel_of(p + 0.1 / S)).max() > 0.05


def test_ball_coverage_is_exact_per_pixel():
    # Coverage of each pixel vs a fine numerical integral of the disc's vertical chords.
    res, r, (x, y) = 16, 1.7, (4.37, 5.81)
    cov = coverage(one(Geometry.empty().add_circle(0, r, "red"), (x, y), resolution=res))
    s = res / world.WORLD_SIZE
    cu, cv, rp = x * s, (world.WORLD_SIZE - y) * s, r * s
    n = 2000
    u = (np.arange(res * n) + 0.5) / n  # column sample points
    half = np.sqrt(np.clip(rp**2 - (u - cu) ** 2, 0, None))
    rows = np.arange(res)[:, None]
    overlap = np.clip(np.minimum(rows + 1, cv + half) - np.maximum(rows, cv - half), 0, 1)
    exact = overlap.reshape(res, res, n).mean(axis=2)
    assert np.abs(cov - exact).max() <= 0.5 / 255 + 1e-3


def test_axis_aligned_rectangle_is_exact_per_pixel():
    x0, x1, y0, y1 = 3.123, 6.456, 2.71, 4.05  # world box
    g = Geometry.empty().add_rect(0, x1 - x0, y1 - y0, "red")
    cov = coverage(one(g, ((x0 + x1) / 2, (y0 + y1) / 2)))
    edges = np.arange(R + 1)
    ov_c = np.clip(np.minimum(edges[1:], x1 * S) - np.maximum(edges[:-1], x0 * S), 0, 1)
    top, bot = (world.WORLD_SIZE - y1) * S, (world.WORLD_SIZE - y0) * S
    ov_r = np.clip(np.minimum(edges[1:], bot) - np.maximum(edges[:-1], top), 0, 1)
    assert np.abs(cov - ov_r[:, None] * ov_c[None]).max() <= 0.5 / 255 + 1e-9


@pytest.mark.parametrize("shape", ["square", "ring"])
def test_square_and_ring_area_and_centroid(shape):
    rng = np.random.default_rng(1)
    for r in (0.3, 0.8, 1.4, 2.0):
        geom = Geometry.from_objects(world.Objects.make([r], shapes=[shape]))
        for _ in range(4):
            p, th = rng.uniform(3.0, 7.0, 2), rng.uniform(-np.pi, np.pi)
            a, c = area_centroid(coverage(one(geom, p, th)))
            rp = r * S
            want = 4 * rp**2 if shape == "square" else np.pi * rp**2 * (1 - world.RING_INNER**2)
            assert abs(a / want - 1) <= 0.01
            assert np.abs(c - pixel_of(p)).max() <= 0.05


def test_rotated_rectangle_and_triangle():
    rng = np.random.default_rng(2)
    tri = np.array([[-1.3, -0.4], [1.1, -0.9], [0.2, 1.5]])
    g_tri = Geometry.empty().add_polygon(0, tri[::-1], "green")  # clockwise is fine
    g_bar = Geometry.empty().add_rect(0, 3.0, 0.25, "black")
    for _ in range(6):
        p, th = rng.uniform(3.5, 6.5, 2), rng.uniform(-np.pi, np.pi)
        a, c = area_centroid(coverage(one(g_bar, p, th), (0, 0, 0)))
        assert abs(a / (3.0 * 0.25 * S**2) - 1) <= 0.01
        assert np.abs(c - pixel_of(p)).max() <= 0.05
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        a, c = area_centroid(coverage(one(g_tri, p, th), world.PALETTE["green"]))
        (ux, uy), (vx, vy) = tri[1] - tri[0], tri[2] - tri[0]
        area = 0.5 * abs(ux * vy - uy * vx)
        assert abs(a / (area * S**2) - 1) <= 0.01
        assert np.abs(c - pixel_of(p + rot @ tri.mean(axis=0))).max() <= 0.05


def test_body_pose_moves_primitives_rigidly():
    # A horizontal bar turned by the body's angle equals a vertical bar, off-centre parts too.
    bar = Geometry.empty().add_rect(0, 2.0, 0.5, "red", center=(1.0, 0.0))
    post = Geometry.empty().add_rect(0, 0.5, 2.0, "red", center=(0.0, 1.0))
    a = one(bar, (4.3, 4.6), np.pi / 2).astype(int)
    b = one(post, (4.3, 4.6), 0.0).astype(int)
    assert np.abs(a - b).max() <= 1 and (a < 255).sum() > 100


def test_clipping_at_frame_edges():
    r = 1.5
    g = Geometry.from_objects(world.Objects.make([r]))
    half, _ = area_centroid(coverage(one(g, (0.0, 5.0))))
    quarter, _ = area_centroid(coverage(one(g, (10.0, 10.0))))
    disc = np.pi * (r * S) ** 2
    assert abs(half / (disc / 2) - 1) < 1e-3 and abs(quarter / (disc / 4) - 1) < 1e-3
    sq = Geometry.from_objects(world.Objects.make([r], shapes=["square"]))
    a, _ = area_centroid(coverage(one(sq, (5.0, 0.0))))
    assert abs(a / (2 * (r * S) ** 2) - 1) < 1e-3
    for geom in (g, sq, Geometry.from_objects(world.Objects.make([r], shapes=["ring"]))):
        for p in [(-3.0, 5.0), (5.0, 13.0), (1e6, -1e6), (12.2, 5.0)]:
            assert (one(geom, p, 0.3) == 255).all()


def test_later_primitive_wins_and_layers_have_no_seams():
    g = Geometry.empty().add_circle(0, 1.0, "red").add_circle(1, 1.0, "blue")
    f = render_bodies(g, np.array([[[5.0, 5.0], [5.0, 5.0]]]))[0]
    blue_only = one(Geometry.empty().add_circle(0, 1.0, "blue"), (5.0, 5.0))
    full = np.all(blue_only == world.PALETTE["blue"], axis=-1)
    assert full.sum() > 400 and np.all(f[full] == world.PALETTE["blue"])
    g2 = Geometry.empty().add_circle(1, 1.0, "blue").add_circle(0, 1.0, "red")
    assert tuple(render_bodies(g2, np.array([[[5.0, 5.0], [5.0, 5.0]]]))[0, 64, 64]) == (255, 0, 0)
    # A rectangle drawn as two abutting halves on one body (cut at x = 0.0137, inside a
    # pixel) renders as the whole rectangle: coverages add within a layer.
    whole = Geometry.empty().add_rect(0, 2.0, 1.0, "black")
    halves = (
        Geometry.empty()
        .add_rect(0, 1.0137, 1.0, "black", center=(-0.5 + 0.0137 / 2, 0.0))
        .add_rect(0, 0.9863, 1.0, "black", center=(0.5 + 0.0137 / 2, 0.0))
    )
    a, b = one(whole, (5.01, 5.0)).astype(int), one(halves, (5.01, 5.0)).astype(int)
    assert np.abs(a - b).max() <= 1


def test_determinism_in_process_and_fresh_subprocess():
    code = (
        "import hashlib, numpy as np\n"
        "from physim import world\n"
        "from physim.geometry import Geometry\n"
        "from physim.render import render_bodies\n"
        "g = Geometry.from_objects(world.Objects.make([0.9, 1.3], ['ball', 'ring']))\n"
        "g = g.add_rect(2, 3.0, 0.3, 'phyre_gray', angle=0.4)\n"
        "t = np.linspace(0, 1, 5)[:, None, None]\n"
        "pos = np.array([[2.1, 3.3], [7.7, 5.2], [5.0, 8.0]]) + t * [[3, 1], [-3, 0.5], [0, 0]]\n"
        "ang = np.tile([0.0, 0.3, 1.1], (5, 1)) * np.arange(1, 6)[:, None]\n"
        "print(hashlib.sha256(render_bodies(g, pos, ang, 64).tobytes()).hexdigest())\n"
    )
    here = {}
    exec(compile(code.replace("print(", "h = ("), "<render>", "exec"), here)
    exec(compile(code.replace("print(", "h2 = ("), "<render>", "exec"), here)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert here["h"] == here["h2"] == out.stdout.strip()


def test_render_trajectory_objects_and_render_into():
    objects = world.Objects.make([1.0, 0.7], shapes=["ball", "square"], colors=["red", "blue"])
    t = 4
    pos = np.stack([np.linspace([2.0, 5.0], [3.0, 5.0], t), np.linspace([7, 2], [7, 3], t)], 1)
    z, e = np.zeros((t, 2)), np.zeros(0)
    traj = Trajectory(np.arange(t) * 0.1, pos, pos * 0, z, z, e, e.astype(np.int32),
                      np.zeros((0, 2), np.int32))  # fmt: skip
    frames = render(traj, objects, resolution=40)
    assert frames.shape == (t, 40, 40, 3) and frames.dtype == np.uint8
    assert tuple(frames[0, 20, 8]) == (255, 0, 0) and tuple(frames[0, 0, 0]) == (255, 255, 255)
    assert tuple(frames[0, 31, 28]) == (0, 0, 255)
    out = np.zeros_like(frames)
    geom = Geometry.from_objects(objects)
    assert render_into(out, geom, pos, z) is out and np.array_equal(out, frames)
    # The package's lazy re-export stays callable after the submodule was imported.
    assert np.array_equal(physim.render(traj, objects, 40), frames)
    assert np.array_equal(physim.render(traj, objects, resolution=40), frames)
    grey = render_bodies(geom, pos, None, 40, background=(10, 20, 30))
    assert tuple(grey[0, 0, 0]) == (10, 20, 30) and tuple(grey[0, 20, 8]) == (255, 0, 0)


def test_any_resolution_keeps_area():
    g = Geometry.from_objects(world.Objects.make([1.1]))
    for res in (1, 7, 37, 200):
        a, c = area_centroid(coverage(one(g, (4.9, 5.3), resolution=res)))
        s = res / world.WORLD_SIZE
        assert abs(a / (np.pi * (1.1 * s) ** 2) - 1) < 0.02 + 1 / res**2


def test_bad_inputs_raise_clear_errors():
    g = Geometry.from_objects(world.Objects.make([1.0, 1.0]))
    pos = np.full((3, 2, 2), 5.0)
    for bad in (0, -4, 1.5, True, None):
        with pytest.raises(ValueError, match="resolution"):
            render_bodies(g, pos, resolution=bad)
    with pytest.raises(ValueError, match="positions"):
        render_bodies(g, pos[:, :1])
    with pytest.raises(ValueError, match="positions"):
        render_bodies(g, pos[..., :1])
    with pytest.raises(ValueError, match="finite"):
        render_bodies(g, np.where(np.arange(2)[None, :, None] == 1, np.nan, pos))
    with pytest.raises(ValueError, match="angles"):
        render_bodies(g, pos, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="background"):
        render_bodies(g, pos, background=(0, 0, 300))
    with pytest.raises(ValueError, match="out"):
        render_into(np.zeros((3, 8, 8, 3), np.float32), g, pos)
    with pytest.raises(ValueError, match="out"):
        render_into(np.zeros((2, 8, 8, 3), np.uint8), g, pos)
    with pytest.raises(ValueError, match="convex"):
        Geometry.empty().add_polygon(0, [[0, 0], [2, 0], [0.5, 0.5], [0, 2]], "red")
    with pytest.raises(ValueError, match="inner"):
        Geometry.empty().add_ring(0, 1.0, "red", inner=1.0)
    with pytest.raises(ValueError, match="colour"):
        Geometry.empty().add_circle(0, 1.0, "mauve")
    with pytest.raises(ValueError, match="radius"):
        Geometry.empty().add_circle(0, -1.0, "red")


def _random_disc_scenes(rng, n_videos, n_frames, n_objects):
    """Radii, shape codes, colours, positions and angles of random disc scenes, some objects
    partly or wholly outside the frame, some at pixel-aligned or zero coordinates."""
    radii = rng.uniform(0.05, 2.5, (n_videos, n_objects))
    shapes = rng.integers(0, len(world.SHAPES), (n_videos, n_objects)).astype(np.int8)
    rgb = rng.integers(0, 256, (n_videos, n_objects, 3)).astype(np.uint8)
    pos = rng.uniform(-1.5, 11.5, (n_videos, n_frames, n_objects, 2))
    pos[0, 0] = np.round(pos[0, 0] * 3.2) / 3.2  # on pixel lines at R = 32
    pos[0, -1, 0] = 0.0
    ang = rng.uniform(-4, 4, (n_videos, n_frames, n_objects))
    ang[1] = 0.0
    return radii, shapes, rgb, pos, ang


def test_disc_fast_paths_equal_the_table_path_byte_for_byte():
    rng = np.random.default_rng(7)
    v, t, n, res = 6, 3, 4, 32
    radii, shapes, rgb, pos, ang = _random_disc_scenes(rng, v, t, n)
    batch = np.zeros((v, t, res, res, 3), np.uint8)
    assert render_discs_into(batch, pos, radii, shapes, rgb, ang) is batch
    for k in range(v):
        geom = Geometry.from_discs(radii[k], shapes[k], rgb[k])
        table = render_bodies(geom, pos[k], ang[k], res)
        assert np.array_equal(batch[k], table)
        one = np.full((t, res, res, 3), 7, np.uint8)
        render_discs_into(one, pos[k], radii[k], shapes[k], rgb[k], ang[k])
        assert np.array_equal(one, table)
        names = [world.SHAPES[s] for s in shapes[k]]
        colors = list(world.PALETTE)[:n]
        objects = world.Objects.make(radii[k], names, colors)
        e = np.zeros(0)
        traj = Trajectory(np.arange(t) * 0.1, pos[k], pos[k] * 0, ang[k], ang[k] * 0, e,
                          e.astype(np.int32), np.zeros((0, 2), np.int32))  # fmt: skip
        geom = Geometry.from_objects(objects)
        assert np.array_equal(render(traj, objects, res), render_bodies(geom, pos[k], ang[k], res))
    # Not vacuous: objects were drawn, squares turn with their angle, and order matters.
    assert 0.05 < (batch != 255).any(axis=-1).mean() < 0.95
    sq = render_discs_into(np.empty((1, 32, 32, 3), np.uint8), [[[5.0, 5.0]]], [2.0], [1],
                           [[0, 0, 0]], [[0.3]])  # fmt: skip
    flat = render_discs_into(np.empty_like(sq), [[[5.0, 5.0]]], [2.0], [1], [[0, 0, 0]])
    assert not np.array_equal(sq, flat)
    two = np.empty((1, 32, 32, 3), np.uint8)
    render_discs_into(
        two, [[[5.0, 5.0], [5.2, 5.0]]], [1.0, 1.0], [0, 0], [[255, 0, 0], [0, 0, 255]]
    )
    assert tuple(two[0, 16, 17]) == (0, 0, 255)


def test_disc_padding_and_background():
    # Radius-0 objects are not drawn: a padded batch equals the unpadded videos.
    rng = np.random.default_rng(8)
    radii, shapes, rgb, pos, ang = _random_disc_scenes(rng, 2, 2, 3)
    padded_r = radii.copy()
    padded_r[1, 2] = 0.0
    out = np.empty((2, 2, 24, 24, 3), np.uint8)
    render_discs_into(out, pos, padded_r, shapes, rgb, ang, background=(10, 20, 30))
    alone = render_discs_into(np.empty((2, 24, 24, 3), np.uint8), pos[1, :, :2], radii[1, :2],
                              shapes[1, :2], rgb[1, :2], ang[1, :, :2], (10, 20, 30))  # fmt: skip
    assert np.array_equal(out[1], alone)
    geom = Geometry.from_discs(radii[0], shapes[0], rgb[0])
    assert np.array_equal(out[0], render_bodies(geom, pos[0], ang[0], 24, (10, 20, 30)))
    bg = (out == (10, 20, 30)).all(axis=-1).mean()
    assert 0.05 < bg < 0.95 and not (out == 255).all(axis=-1).any()


def test_direct_and_layered_discs_agree():
    # A disc or ring alone is drawn by the direct kernels; sharing its layer with an
    # off-screen piece of the same body and colour sends it through the coverage sum.
    rng = np.random.default_rng(9)
    for _ in range(6):
        r, p = rng.uniform(0.2, 2.0), rng.uniform(-1.0, 11.0, 2)
        for add in (Geometry.add_circle, Geometry.add_ring):
            alone = add(Geometry.empty(), 0, r, "green")
            layered = add(Geometry.empty(), 0, r, "green").add_rect(0, 0.1, 0.1, "green", (50, 0))
            assert layered.layer_end[0] == 2
            a, b = one(alone, p, resolution=40), one(layered, p, resolution=40)
            assert np.array_equal(a, b)


def test_from_discs_is_the_from_objects_table():
    objects = world.Objects.make([0.5, 1.0, 0.7, 1.2], ["square", "ring", "ball", "square"])
    a = Geometry.from_objects(objects)
    b = Geometry.from_discs(objects.radii, objects.shape_codes, objects.rgb)
    for name in ("kind", "body", "params", "verts", "vert_start", "vert_count", "colors",
                 "layer_end"):  # fmt: skip
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    assert b.n_bodies == 4 and list(b.vert_start) == [0, 0, 0, 4]
    assert np.array_equal(b.verts[4:], 1.2 * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]))


def test_disc_fast_path_bad_inputs():
    out = np.empty((2, 8, 8, 3), np.uint8)
    pos, r, s, c = np.full((2, 1, 2), 5.0), [1.0], [0], [[255, 0, 0]]
    render_discs_into(out, pos, r, s, c)
    for kwargs, match in [
        (dict(positions=pos[..., :1]), "positions"),
        (dict(positions=np.where(pos > 0, np.inf, 0)), "finite"),
        (dict(radii=[-1.0]), "radii"),
        (dict(radii=[1.0, 1.0]), "radii"),
        (dict(shape_codes=[3]), "shape_codes"),
        (dict(shape_codes=[0.0]), "shape_codes"),
        (dict(rgb=[[256, 0, 0]]), "rgb"),
        (dict(rgb=[255, 0, 0]), "rgb"),
        (dict(angles=np.zeros((2, 2))), "angles"),
        (dict(out=np.empty((2, 8, 8, 3), np.float32)), "out"),
        (dict(out=np.empty((2, 8, 9, 3), np.uint8)), "out"),
        (dict(out=np.empty((1, 2, 8, 8, 3), np.uint8)), "out"),
        (dict(background=(0, 0, 256)), "background"),
    ]:
        args = dict(out=out, positions=pos, radii=r, shape_codes=s, rgb=c) | kwargs
        with pytest.raises(ValueError, match=match):
            render_discs_into(**args)
    with pytest.raises(ValueError, match="shape"):
        Geometry.from_discs([1.0], [5], [[0, 0, 0]])
    with pytest.raises(ValueError, match="rgb"):
        Geometry.from_discs([1.0], [0], [[0, 0, 300]])
    with pytest.raises(ValueError, match="finite"):
        Geometry.from_discs([np.nan], [0], [[0, 0, 0]])


def test_threads_render_the_same_bytes():
    # The kernels release the GIL and keep no shared scratch: threads agree with one call.
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(10)
    radii, shapes, rgb, pos, ang = _random_disc_scenes(rng, 8, 2, 3)
    whole = render_discs_into(np.empty((8, 2, 24, 24, 3), np.uint8), pos, radii, shapes, rgb, ang)
    out = np.zeros_like(whole)

    def one_video(k):
        render_discs_into(out[k], pos[k], radii[k], shapes[k], rgb[k], ang[k])
        geom = Geometry.from_discs(radii[k], shapes[k], rgb[k])
        return render_bodies(geom, pos[k], ang[k], 24)

    with ThreadPoolExecutor(4) as pool:
        tables = list(pool.map(one_video, range(8)))
    assert np.array_equal(out, whole) and np.array_equal(np.stack(tables), whole)


def test_frames_equal_frames_rendered_alone():
    # Tables kept from frame to frame (a ball moving horizontally or vertically, or at
    # rest) give the bytes of each frame rendered on its own.
    rng = np.random.default_rng(11)
    t = 6
    x = np.linspace(2.0, 8.0, t)
    still = np.full(t, 4.3)
    paths = [np.stack([x, still], -1), np.stack([still, x], -1), np.stack([still, still], -1)]
    pos = np.stack(paths + [rng.uniform(1, 9, (t, 2))], 1)  # (T, 4, 2)
    for shape in range(len(world.SHAPES)):
        radii, codes, rgb = [0.9, 1.3, 0.6, 1.1], [shape] * 4, rng.integers(0, 256, (4, 3))
        video = render_discs_into(np.empty((t, 48, 48, 3), np.uint8), pos, radii, codes, rgb)
        geom = Geometry.from_discs(radii, codes, rgb)
        table = render_bodies(geom, pos, None, 48)
        for k in range(t):
            alone = render_discs_into(np.empty((1, 48, 48, 3), np.uint8), pos[k : k + 1],
                                      radii, codes, rgb)  # fmt: skip
            assert np.array_equal(video[k], alone[0]) and np.array_equal(table[k], alone[0])
