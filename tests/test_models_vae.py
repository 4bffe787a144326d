"""Video VAE: shapes for every downsampling, temporal causality, and the latent DiT path."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import configs, data, sample, train
from models.vae import VAE

pytestmark = pytest.mark.usefixtures("fast_compile")


@pytest.mark.parametrize("sd,td", [(4, 1), (4, 2), (8, 4), (8, 2)])
def test_vae_shapes(sd, td):
    widths = (4,) * (int(np.log2(sd)) + 1)
    cfg = configs.VAEConfig(spatial_down=sd, temporal_down=td, latent_channels=3, widths=widths)
    model = nnx.eval_shape(lambda: VAE(cfg, rngs=nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((2, 8, 16, 16, 3), jnp.float32)
    graphdef, state = nnx.split(model)
    enc = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s).encode(x)[0], state, x)
    assert enc.shape == (2, 8 // td, 16 // sd, 16 // sd, 3)
    dec = jax.eval_shape(lambda s, z: nnx.merge(graphdef, s).decode(z), state, enc)
    assert dec.shape == x.shape


def test_vae_is_causal_in_time():
    cfg = configs.get_preset("vae-test").vae  # spatial 4, temporal 2
    graphdef, state = nnx.split(VAE(cfg, rngs=nnx.Rngs(0)))
    enc = jax.jit(lambda x: nnx.merge(graphdef, state).encode(x)[0])
    dec = jax.jit(lambda z: nnx.merge(graphdef, state).decode(z))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 8, 3))
    y = x.at[:, 6:].set(0.0)  # change only frames 6 and 7 (latent frame 3)
    m = enc(jnp.concatenate([x, y]))
    mx, my = m[:2], m[2:]
    np.testing.assert_allclose(mx[:, :3], my[:, :3], atol=1e-6)
    assert float(jnp.abs(mx[:, 3] - my[:, 3]).max()) > 1e-4  # the last one does change
    dx, dy = dec(mx), dec(mx.at[:, 3].set(0.0))
    np.testing.assert_allclose(dx[:, :6], dy[:, :6], atol=1e-6)


def test_per_frame_vae_sees_only_its_frame():
    cfg = configs.VAEConfig(spatial_down=4, temporal_down=1, latent_channels=3, widths=(4, 4, 4),
                            temporal_kernel=1)
    graphdef, state = nnx.split(VAE(cfg, rngs=nnx.Rngs(0)))
    rec = jax.jit(lambda x: nnx.merge(graphdef, state).decode(
        nnx.merge(graphdef, state).encode(x)[0]))
    x = jax.random.normal(jax.random.key(0), (1, 4, 8, 8, 3))
    full = rec(x)
    for t in range(4):  # each frame alone gives the same reconstruction
        np.testing.assert_allclose(rec(x[:, t : t + 1]), full[:, t : t + 1], atol=1e-5)
    causal = configs.VAEConfig(spatial_down=4, temporal_down=1, latent_channels=3,
                               widths=(4, 4, 4))  # 3x3x3: frame 1 sees frame 0
    g2, s2 = nnx.split(VAE(causal, rngs=nnx.Rngs(0)))
    r2 = nnx.merge(g2, s2)
    assert float(jnp.abs(r2.encode(x)[0][:, 1] - r2.encode(x[:, 1:2])[0][:, 0]).max()) > 1e-4


def test_bad_vae_configs_raise():
    with pytest.raises(ValueError, match="temporal_kernel"):
        configs.Config(name="x", model="vae", vae=configs.VAEConfig(temporal_kernel=1))
    with pytest.raises(ValueError, match="temporal_kernel"):
        configs.Config(name="x", model="vae", vae=configs.VAEConfig(
            temporal_down=1, temporal_kernel=2))
    with pytest.raises(ValueError, match="clip"):
        configs.Config(name="x", model="vae", data=configs.DataConfig(clip="middle"),
                       vae=configs.VAEConfig())


def test_bad_widths_raise():
    with pytest.raises(ValueError, match="widths"):
        VAE(configs.VAEConfig(spatial_down=8, widths=(4, 4)), rngs=nnx.Rngs(0))


def test_vae_then_latent_dit_train_and_sample(tmp_path):
    src = data.SyntheticSource(16, 4)
    vcfg = configs.get_preset("vae-test")
    train.train(vcfg, src, str(tmp_path / "vae"), progress=False)
    dcfg = configs.apply_overrides(configs.get_preset("dit-test-latent"),
                                   [f"vae_workdir={tmp_path / 'vae'}", "train.steps=2"])
    m = train.train(dcfg, src, str(tmp_path / "dit"), progress=False)
    assert np.isfinite(m["loss"])
    s = sample.load(str(tmp_path / "dit"))
    assert float(s.vae[1]["scale"]) > 0 and float(s.vae[1]["scale"]) != 1.0  # saved scale
    out = s.generate(np.stack([src[0], src[1]])[:, :1], jax.random.key(0), steps=2)
    assert out.shape == (2, 4, 16, 16, 3) and out.dtype == np.uint8
    bad = dataclasses.replace(dcfg, vae_workdir="")
    with pytest.raises(ValueError, match="vae_workdir"):
        train.train(bad, src, str(tmp_path / "dit2"), progress=False)


def test_sample_cli_on_a_vae_writes_reconstructions(tmp_path):
    import argparse
    import os

    import physim.dataset

    ds_dir = tmp_path / "uniform"
    physim.dataset.generate("uniform", split="train", n=3, seed=0, out=str(ds_dir),
                            progress=False)
    vcfg = configs.apply_overrides(configs.get_preset("vae-test"), ["train.steps=2"])
    src = data.SyntheticSource(16, 4)
    train.train(vcfg, src, str(tmp_path / "vae"), progress=False)
    parser = argparse.ArgumentParser()
    sample.add_parser(parser.add_subparsers())
    out = tmp_path / "recon"
    args = parser.parse_args(["sample", "--workdir", str(tmp_path / "vae"), "--data",
                              str(ds_dir), "--out", str(out), "--batch", "2"])
    assert args.func(args) == 0
    ds = physim.dataset.open(str(ds_dir))
    assert sorted(os.listdir(out)) == sorted(f"{i}.npy" for i in ds.ids)
    r = sample.load_vae(str(tmp_path / "vae"))
    frames = ds.frames(0, resolution=16)  # full length, though trained on 4-frame clips
    v = np.load(out / f"{ds.ids[0]}.npy", allow_pickle=False)
    assert v.shape == (32, 16, 16, 3) and v.dtype == np.uint8
    # Every frame is the VAE's own output (nothing copied from the data), batch-independent.
    np.testing.assert_array_equal(v, r.reconstruct(frames[None])[0])
    with pytest.raises(ValueError, match="multiple of 2"):
        r.reconstruct(frames[None, :3])
    with pytest.raises(ValueError, match="sampling needs a DiT"):
        sample.load(str(tmp_path / "vae"))


def _box_moments_reference(e, k):
    """Loop reference of ``moment_loss``: every k×k box at stride k/2, zero-padded."""
    s = k // 2
    b, t, h, w, c = e.shape
    ep = np.pad(e.reshape(b * t, h, w, c), ((0, 0), (s, s), (s, s), (0, 0)))
    p = np.arange(k) + 0.5 - s  # pixel centres about the box centre
    terms = []
    for i in range(h // s + 1):
        for j in range(w // s + 1):
            box = ep[:, i * s:i * s + k, j * s:j * s + k]
            m0 = box.sum((1, 2)) / k**2
            my = (box * p[:, None, None]).sum((1, 2)) / k**3
            mx = (box * p[None, :, None]).sum((1, 2)) / k**3
            terms.append(m0**2 + 12 * (my**2 + mx**2))
    return k * k * np.mean(terms) / 3


@pytest.mark.parametrize("k", [4, 8])
def test_moment_loss_matches_a_loop_and_sees_centroid_shifts(k):
    from models.vae import moment_loss

    e = np.random.default_rng(0).normal(size=(2, 3, 16, 16, 3))
    np.testing.assert_allclose(float(moment_loss(jnp.asarray(e, jnp.float32), k)),
                               _box_moments_reference(e, k), rtol=1e-5)
    # A dipole (mass moved by one pixel) has zero mass but a first moment; a pixel
    # checkerboard (MSE 1) moves no mass in any box and scores nothing.
    dip = np.zeros((1, 1, 16, 16, 1), np.float32)
    dip[0, 0, 6, 6], dip[0, 0, 6, 7] = -1.0, 1.0
    checker = (-1.0) ** np.add.outer(np.arange(16), np.arange(16))
    assert float(moment_loss(jnp.asarray(dip), k)) > 1e-4
    assert float(moment_loss(jnp.asarray(checker[None, None, :, :, None], jnp.float32),
                             k)) < 1e-10


def test_pixel_weights_favour_pixels_near_objects():
    from models.vae import pixel_weights

    x = np.ones((2, 1, 8, 8, 3), np.float32)  # white background in [-1, 1]
    x[0, 0, 3:5, 3:5] = -0.5  # a 2x2 object in frame 0; frame 1 is empty
    w = np.asarray(pixel_weights(jnp.asarray(x), 10.0))[:, 0, :, :, 0]  # (2, 8, 8)
    near = np.zeros((8, 8), bool)
    near[2:6, 2:6] = True  # the object dilated by one pixel
    np.testing.assert_allclose(w[0][near] / w[0][~near].max(), 10.0, rtol=1e-6)
    assert np.ptp(w[0][~near]) == 0 and np.ptp(w[1]) == 0
    assert abs(w.mean() - 1.0) < 1e-6
    # One grey level off the background is still background.
    x[1, 0, 0, 0] = 1.0 - 1.0 / 127.5
    assert np.ptp(np.asarray(pixel_weights(jnp.asarray(x), 10.0))[1]) == 0  # frame 1 flat


def test_vae_loss_terms_and_their_configs():
    from models.vae import vae_loss

    cfg = configs.get_preset("vae-test").vae
    model = VAE(cfg, rngs=nnx.Rngs(0))
    x = jnp.asarray(data.SyntheticSource(16, 4)[0][None], jnp.float32) / 127.5 - 1.0
    key = jax.random.key(0)
    plain, m = vae_loss(model, x, key, 0.0)
    assert "moment" not in m and "weighted_mse" not in m
    np.testing.assert_allclose(float(plain), float(m["mse"]))
    both, m2 = vae_loss(model, x, key, 0.0, moment_weight=2.0, moment_window=4, fg_weight=5.0)
    np.testing.assert_allclose(float(both), float(m2["weighted_mse"] + 2.0 * m2["moment"]),
                               rtol=1e-6)
    assert float(m2["weighted_mse"]) != float(m2["mse"])
    for bad in ({"fg_weight": 0.5}, {"moment_weight": -1.0}, {"moment_window": 3},
                {"moment_weight": 1.0, "moment_window": 12}):
        with pytest.raises(ValueError, match="fg_weight|moment"):
            configs.Config(name="x", model="vae", data=configs.DataConfig(resolution=32),
                           vae=configs.VAEConfig(spatial_down=4, widths=(4, 4, 4), **bad))
