"""The training loop: overfitting, bit-identical resume, 1 vs 2 devices, sampling, CLI."""

import argparse
import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from models import checkpoint, configs, data, sample, train

pytestmark = pytest.mark.usefixtures("fast_compile")


class FixedSource:
    """The same few synthetic videos for every batch."""

    def __init__(self, cfg, n=4):
        src = data.SyntheticSource(cfg.data.resolution, cfg.data.frames, seed=3)
        self.videos = [src[i] for i in range(n)]

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        return self.videos[i]


def _cfg(name="dit-test", **train_kw):
    cfg = configs.get_preset(name)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train_kw))


def _params(workdir):
    mngr = checkpoint.manager(workdir)
    meta, step = checkpoint.read_meta(workdir)
    cfg = checkpoint.config_of(meta)
    _, p, _, _ = train.split_params(train.build_model(cfg))
    tx, _ = train.make_optimizer(cfg.train)
    state, _ = checkpoint.restore(mngr, {"params": p, "opt_state": tx.init(p), "ema": p})
    return state, step


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory):
    cfg = _cfg(steps=150, lr=3e-3, warmup=10, log_every=10, ckpt_every=1000)
    cfg = dataclasses.replace(cfg, diffusion=dataclasses.replace(cfg.diffusion,
                                                                 objective="flow_x"))
    wd = str(tmp_path_factory.mktemp("overfit"))
    train.train(cfg, FixedSource(cfg), wd, progress=False)
    rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
    return cfg, wd, rows


def test_tiny_preset_overfits_a_fixed_batch(overfit_run):
    _, _, rows = overfit_run
    first, last = rows[0]["loss"], np.mean([r["loss"] for r in rows[-3:]])
    assert rows[-1]["step"] == 150
    assert last < 0.2 * first, (first, last)
    assert all(np.isfinite(r["grad_norm"]) for r in rows)
    # On CPU the MFU is against the measured matmul rate: logged, and a fraction.
    assert all(0 < r["mfu"] < 1 for r in rows), [r.get("mfu") for r in rows]


def test_cpu_peak_is_a_measured_matmul_rate():
    peak = train.peak_flops(jax.devices()[0])
    assert peak == train.cpu_peak_flops() and 1e8 < peak < 1e14  # once per process
    assert train.peak_flops(type("Dev", (), {"device_kind": "NVIDIA H200"})()) == 989e12
    assert train.peak_flops(type("Dev", (), {"device_kind": "?", "platform": "gpu"})()) is None


def test_sampling_shapes_dtype_range(overfit_run):
    cfg, wd, _ = overfit_run
    s = sample.load(wd)
    d = cfg.data
    cond = np.stack(FixedSource(cfg).videos[:3])[:, : d.n_cond]
    out = s.generate(cond, jax.random.key(0), steps=3)
    assert out.shape == (3, d.frames, d.resolution, d.resolution, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, : d.n_cond], cond)
    assert out[:, d.n_cond:].std() > 1.0  # not a constant image
    one = s.generate(cond[:1], jax.random.key(0), steps=3)  # independent of batch mates
    np.testing.assert_array_equal(one[0], out[0])
    with pytest.raises(ValueError, match="cond_frames"):
        s.generate(cond[:, :, :4], jax.random.key(0))
    # A sampling-only export gives the same videos.
    exported = checkpoint.export(wd, os.path.join(wd, "export"))
    again = sample.load(exported).generate(cond, jax.random.key(0), steps=3)
    np.testing.assert_array_equal(again, out)


def test_resume_is_bit_identical(tmp_path):
    cfg = _cfg(steps=4, ckpt_every=2)
    src = data.SyntheticSource(cfg.data.resolution, cfg.data.frames)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train.train(cfg, src, a, progress=False)
    train.train(cfg, src, b, progress=False, stop_at=2)  # "killed" after step 2
    s2, n2 = _params(b)
    assert n2 == 2
    train.train(cfg, src, b, progress=False)  # resumed
    (sa, na), (sb, nb) = _params(a), _params(b)
    assert na == nb == 4
    for x, y in zip(jax.tree.leaves(sa), jax.tree.leaves(sb), strict=True):
        np.testing.assert_array_equal(x, y)
    # Negative control: the resumed half did train (step-2 and step-4 weights differ).
    assert any(not np.array_equal(x, y) for x, y in
               zip(jax.tree.leaves(s2["params"]), jax.tree.leaves(sb["params"]), strict=True))


def test_workdir_is_locked_and_a_resume_must_match_the_run(tmp_path):
    cfg = _cfg(steps=2, ckpt_every=2)
    src = data.SyntheticSource(cfg.data.resolution, cfg.data.frames)
    wd = str(tmp_path / "w")
    train.train(cfg, src, wd, progress=False, data_name="scenario:uniform")
    # The same run again: nothing to do, accepted (logging settings may change).
    train.train(configs.apply_overrides(cfg, ["train.log_every=7"]), src, wd, progress=False,
                data_name="scenario:uniform")
    saved = (tmp_path / "w" / "config.json").read_text()
    assert '"log_every": 7' in saved
    for bad, match in ((["train.lr=0.5"], "train.lr"), (["train.seed=3"], "train.seed"),
                       (["train.steps=9"], "train.steps")):
        with pytest.raises(ValueError, match=f"other settings.*{match}"):
            train.train(configs.apply_overrides(cfg, bad), src, wd, progress=False,
                        data_name="scenario:uniform")
    with pytest.raises(ValueError, match="trained on scenario:uniform, not scenario:collision"):
        train.train(cfg, src, wd, progress=False, data_name="scenario:collision")
    assert (tmp_path / "w" / "config.json").read_text() == saved  # refused runs wrote nothing
    # A second trainer on a held workdir is refused, naming the holder.
    with checkpoint.workdir_lock(wd):
        with pytest.raises(ValueError, match=f"in use by another physim train .pid {os.getpid()}"):
            train.train(cfg, src, wd, progress=False, data_name="scenario:uniform")
    # A workdir whose checkpoints cannot be written is refused before training.
    bad = tmp_path / "ro"
    bad.mkdir()
    (bad / "checkpoints").write_text("not a folder")
    with pytest.raises(OSError):
        train.train(cfg, src, str(bad), progress=False)
    assert train.source_name("scenario:uniform") == "scenario:uniform"
    assert train.source_name(str(tmp_path), "id") == f"{os.path.realpath(tmp_path)} (split id)"


_DEVICES_SCRIPT = """
import dataclasses, json, sys, jax
from models import configs, data, train

cfg = configs.get_preset("dit-test")
cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=2, ckpt_every=100))
m = train.train(cfg, data.SyntheticSource(16, 4), sys.argv[1], progress=False)
out = {"devices": jax.device_count(), "loss": m["loss"], "grad": m["grad_norm"]}
if jax.device_count() == 2:  # FSDP over both devices; a batch that does not split
    f = configs.apply_overrides(cfg, ["train.fsdp=2"])
    m = train.train(f, data.SyntheticSource(16, 4), sys.argv[1] + "-fsdp", progress=False)
    tx, _ = train.make_optimizer(f.train)
    _, abstract, _ = train.init_state(f, tx, train.make_mesh(f.train), fresh=False)
    out.update(fsdp_loss=m["loss"], fsdp_grad=m["grad_norm"], sharded=sum(
        "fsdp" in str(a.sharding.spec) for a in jax.tree.leaves(abstract["params"])))
    try:
        train.train(configs.apply_overrides(cfg, ["train.batch_size=3"]),
                    data.SyntheticSource(16, 4), sys.argv[1] + "-bad", progress=False)
    except ValueError as e:
        out["error"] = str(e)
print(json.dumps(out))
"""


def test_two_forced_cpu_devices_match_one_with_and_without_fsdp(tmp_path):
    out = {}
    for n in (1, 2):
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
                   JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
        r = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT, str(tmp_path / str(n))],
                           env=env, capture_output=True, text=True, timeout=300, check=True)
        out[n] = json.loads(r.stdout.strip().splitlines()[-1])
    assert out[1]["devices"] == 1 and out[2]["devices"] == 2
    np.testing.assert_allclose(out[2]["loss"], out[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(out[2]["grad"], out[1]["grad"], rtol=1e-4)
    # FSDP: parameters split over the two devices, the same loss as one device.
    assert out[2]["sharded"] > 0
    np.testing.assert_allclose(out[2]["fsdp_loss"], out[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(out[2]["fsdp_grad"], out[1]["grad"], rtol=1e-4)
    assert "batch_size=3 must be a multiple of the 2 devices" in out[2]["error"]
    assert not os.path.exists(tmp_path / "2-bad")  # refused before anything is written


def test_cli_parsers_register_and_validate(tmp_path):
    from models import sample as sample_mod

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    train.add_parser(sub)
    sample_mod.add_parser(sub)
    args = parser.parse_args(["train", "--preset", "dit-test", "--data", "synthetic",
                              "--workdir", str(tmp_path / "w"), "--set", "train.steps=1",
                              "--no-progress"])
    assert args.func is train.run_train and args.set == ["train.steps=1"]
    assert args.func(args) == 0
    args = parser.parse_args(["sample", "--workdir", "w", "--data", "d", "--out", "o",
                              "--steps", "4"])
    assert args.func is sample_mod.run_sample and args.steps == 4
    bad = parser.parse_args(["train", "--preset", "dit-test", "--data", str(tmp_path / "nope"),
                             "--workdir", str(tmp_path / "w2")])
    with pytest.raises(ValueError, match="--data"):
        bad.func(bad)
    zero = parser.parse_args(["train", "--preset", "dit-test", "--data", "synthetic",
                              "--workdir", str(tmp_path / "w3"), "--stop-at", "0"])
    with pytest.raises(ValueError, match="--stop-at must be >= 1"):
        zero.func(zero)
    assert not (tmp_path / "w3").exists()
    # the library call refuses it too (it used to train the whole schedule)
    for bad_stop in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="stop_at must be a step >= 1"):
            train.train(configs.PRESETS["dit-test"], data.SyntheticSource(16, 4),
                        str(tmp_path / "w4"), progress=False, stop_at=bad_stop)
    assert not (tmp_path / "w4").exists()


def test_batch_iterator_is_a_function_of_index():
    src = data.SyntheticSource(16, 4)
    it = data.BatchIterator(FixedSource(_cfg(), n=5), 2, 4, seed=0)
    batches = [next(it) for _ in range(6)]
    it2 = data.BatchIterator(FixedSource(_cfg(), n=5), 2, 4, seed=0)
    it2.set_state({"step": 4})
    np.testing.assert_array_equal(next(it2), batches[4])
    # Two processes each get their half of the global batch.
    full = data.BatchIterator(src, 4, 4).batch(3)
    halves = [data.BatchIterator(src, 4, 4, process_index=p, process_count=2).batch(3)
              for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), full)


def test_gpu_check_script_runs_on_cpu_with_a_tiny_preset():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PRESETS="dit-test", STEPS="1", BATCH="2", PY=sys.executable,
               JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    r = subprocess.run(["bash", os.path.join(root, "scripts", "gpu_check.sh")], env=env,
                       capture_output=True, text=True, timeout=300, check=True)
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["preset"] == "dit-test" and row["step_s"] > 0 and row["analytic_flops"] > 0


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    import physim.dataset

    out = tmp_path_factory.mktemp("ds") / "uniform"
    physim.dataset.generate("uniform", split="train", n=8, seed=0, out=str(out), progress=False)
    return str(out)


def test_grain_loader_path_trains_and_resumes(tiny_dataset, tmp_path):
    cfg = _cfg(steps=2, ckpt_every=1)
    src = data.open_source(f"grain:{tiny_dataset}", cfg.data, batch_size=4)
    m = train.train(cfg, src, str(tmp_path / "g"), progress=False, stop_at=1)
    src = data.open_source(f"grain:{tiny_dataset}", cfg.data, batch_size=4)
    m = train.train(cfg, src, str(tmp_path / "g"), progress=False)
    assert m["step"] == 2 and np.isfinite(m["loss"])
    meta, _ = checkpoint.read_meta(str(tmp_path / "g"))
    assert meta["data"] == {"next_index": 2}


def test_sample_cli_writes_full_length_videos(overfit_run, tiny_dataset, tmp_path):
    cfg, wd, _ = overfit_run
    parser = argparse.ArgumentParser()
    sample.add_parser(parser.add_subparsers())
    out = tmp_path / "gen"
    args = parser.parse_args(["sample", "--workdir", wd, "--data", tiny_dataset, "--out",
                              str(out), "--steps", "2", "--limit", "3", "--batch", "2",
                              "--compile-cache", str(tmp_path / "cc")])
    sample._JIT.clear()  # compile here, so that the rollout enters the persistent cache
    try:
        assert args.func(args) == 0
    finally:
        from jax.experimental.compilation_cache import compilation_cache

        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
    assert any(n.endswith("-cache") for n in os.listdir(tmp_path / "cc"))
    import physim.dataset

    ds = physim.dataset.open(tiny_dataset)
    files = sorted(os.listdir(out))
    assert files == sorted(f"{i}.npy" for i in ds.ids[:3])
    v = np.load(out / files[0], allow_pickle=False)
    d = cfg.data
    assert v.shape == (d.frames, d.resolution, d.resolution, 3) and v.dtype == np.uint8
    i = ds.ids.index(files[0][:-4])
    np.testing.assert_array_equal(v[: d.n_cond], ds.frames(i, resolution=d.resolution,
                                                            n_frames=d.n_cond))


@pytest.mark.parametrize("bad", [["--batch", "-1"], ["--limit", "-5"], ["--batch", "0"],
                                 ["--steps", "0"]])
def test_sample_cli_refuses_non_positive_counts(overfit_run, tiny_dataset, tmp_path, bad):
    _, wd, _ = overfit_run
    parser = argparse.ArgumentParser()
    sample.add_parser(parser.add_subparsers())
    out = tmp_path / "gen"
    args = parser.parse_args(["sample", "--workdir", wd, "--data", tiny_dataset, "--out",
                              str(out), *bad])
    with pytest.raises(ValueError, match="must be >= 1"):
        args.func(args)
    assert not out.exists()


def test_a_dataset_dir_trains_on_its_train_split_only(tmp_path):
    import physim.dataset

    out = tmp_path / "mixed"
    physim.dataset.generate("uniform", split="train", n=6, seed=0, out=str(out),
                            progress=False)
    physim.dataset.generate("uniform", split="id", n=4, seed=0, out=str(out), progress=False)
    cfg = configs.get_preset("dit-test")
    src = data.open_source(str(out), cfg.data)
    assert len(src) == 6 and all("-train-" in i for i in src.ids)
    ev = data.open_source(str(out), cfg.data, split="id")  # only when asked
    assert len(ev) == 4 and all("-id-" in i for i in ev.ids)
    with pytest.raises(ValueError, match="has no split 'ood'"):
        data.open_source(str(out), cfg.data, split="ood")


def test_random_clips_are_windows_of_the_videos():
    src = data.SyntheticSource(16, 12)
    start = data.BatchIterator(src, 4, 4, seed=3, flip=False).batch(0)
    rand = data.BatchIterator(src, 4, 4, seed=3, flip=False, clip="random")
    b = rand.batch(0)
    np.testing.assert_array_equal(b, rand.batch(0))  # a function of (seed, k)
    offsets = []
    for j in range(4):
        full = src[j]
        hits = [t for t in range(9) if np.array_equal(full[t : t + 4], b[j])]
        assert hits, "a random clip must be a window of its video"
        offsets.append(hits[0])
        np.testing.assert_array_equal(start[j], full[:4])
    assert any(o > 0 for o in offsets)
    with pytest.raises(ValueError, match="clip"):
        data.BatchIterator(src, 4, 4, clip="middle")


def test_sample_raw_weights_and_exports_keep_only_ema(overfit_run, tmp_path):
    cfg, wd, _ = overfit_run
    raw, ema = sample.load(wd, ema=False), sample.load(wd)
    diff = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                        raw.params, ema.params)
    assert max(jax.tree.leaves(diff)) > 0  # two different sets of weights
    out = checkpoint.export(wd, str(tmp_path / "export"))
    sample.load(out)
    with pytest.raises(ValueError, match="only EMA"):
        sample.load(out, ema=False)
    _, step = checkpoint.read_meta(wd)
    with pytest.raises(ValueError, match=rf"no checkpoint of step {step + 1} .*holds \[.*{step}\]"):
        checkpoint.export(wd, str(tmp_path / "export2"), step + 1)
    assert not (tmp_path / "export2").exists()  # nothing half-written


def test_init_from_starts_a_fresh_run_from_another_runs_weights(tmp_path):
    cfg = _cfg(steps=2, ckpt_every=2)
    src = data.SyntheticSource(cfg.data.resolution, cfg.data.frames)
    a = str(tmp_path / "a")
    train.train(cfg, src, a, progress=False)
    (sa, _) = _params(a)
    ft = configs.apply_overrides(cfg, [f"train.init_from={a}", "train.steps=1",
                                       "train.lr=0", "train.ckpt_every=1"])
    b = str(tmp_path / "b")
    train.train(ft, src, b, progress=False)
    sb, nb = _params(b)
    assert nb == 1  # its own step count and schedule
    # lr 0: the weights are those it started from; its EMA starts from the other run's EMA
    # and takes one warm-up step (decay 1/10) towards them.
    for p, e, pb, eb in zip(*(jax.tree.leaves(t) for t in (sa["params"], sa["ema"],
                                                          sb["params"], sb["ema"])), strict=True):
        np.testing.assert_array_equal(pb, p)
        np.testing.assert_allclose(eb, 0.1 * e + 0.9 * p, rtol=1e-6, atol=1e-7)
    # From a sampling-only export (EMA weights only): both trees start from them, and the
    # step, which donates both, runs (it failed on one buffer donated twice).
    e = checkpoint.export(a, str(tmp_path / "export"))
    fe = str(tmp_path / "from-export")
    train.train(configs.apply_overrides(ft, [f"train.init_from={e}"]), src, fe, progress=False)
    sd, nd = _params(fe)
    assert nd == 1
    for e_a, pd in zip(jax.tree.leaves(sa["ema"]), jax.tree.leaves(sd["params"]), strict=True):
        np.testing.assert_array_equal(pd, e_a)
    # Negative control: without init_from the same run starts from fresh weights.
    c = str(tmp_path / "c")
    train.train(configs.apply_overrides(ft, ["train.init_from="]), src, c, progress=False)
    assert any(not np.array_equal(x, y) for x, y in zip(
        jax.tree.leaves(sa["params"]), jax.tree.leaves(_params(c)[0]["params"]), strict=True))
    other = configs.apply_overrides(configs.get_preset("dit-test"),
                                    [f"train.init_from={a}", "dit.width=48"])
    with pytest.raises(ValueError, match="different network"):
        train.train(other, src, str(tmp_path / "d"), progress=False)
    # Resuming a workdir with another network is refused before any array is restored.
    with pytest.raises(ValueError, match="different model"):
        train.train(configs.apply_overrides(cfg, ["dit.width=48"]), src, a, progress=False)


@pytest.mark.parametrize("temporal_down", [1, 2, 4])
def test_conditioning_latents_at_sampling_equal_those_of_training(temporal_down, monkeypatch):
    """A latent DiT is trained on the conditioning latents the sampler will give it (the
    given frames with the last one repeated), for every VAE temporal factor."""
    from models import diffusion
    from models.vae import VAE

    cfg = configs.get_preset("dit-test-latent")
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, frames=8, n_cond=3),
                              vae=dataclasses.replace(cfg.vae, temporal_down=temporal_down))
    g, vparams, r, t = train.split_params(VAE(cfg.vae, rngs=__import__("flax").nnx.Rngs(0)))
    frozen = {"vae": vparams, "scale": jax.numpy.float32(1.3)}
    video = data.SyntheticSource(16, 8, seed=1)[0][None]  # (1, 8, 16, 16, 3) uint8
    x = train.to_float(video)
    mask = train.cond_mask(cfg, 1)[:, :, None, None, None]
    z, z_cond = train.latents(cfg, (g, t, r), frozen, x)
    seen = {}

    def fake_sample(apply, cond, mask_, key, dcfg, steps=None):
        seen["cond"] = np.asarray(cond)
        return jax.numpy.zeros_like(cond)

    monkeypatch.setattr(diffusion, "sample", fake_sample)
    monkeypatch.setattr(sample, "_generate", lambda s, v, k, n, m=1: sample._generate_impl(
        s.cfg, s.parts, s.vae[0], n, m, s.params, s.vae[1], v, k))
    dg, dparams, dr, dt = train.split_params(train.build_model(cfg))
    s = sample.Sampler(cfg, dparams, (dg, dt, dr), ((g, t, r), frozen))
    s.generate(video[:, :3], jax.random.key(0))
    np.testing.assert_allclose(seen["cond"], np.asarray(z_cond * mask), atol=1e-6)
    # Causal VAE: latent 0 sees frame 0, latent k frames f(k-1)+1..fk. Conditioning latents
    # are those seeing a given frame (frames 0-2): 3 / 2 / 2 of them for f = 1 / 2 / 4.
    assert int(train.cond_mask(cfg, 1).sum()) == {1: 3, 2: 2, 4: 2}[temporal_down]
    if temporal_down == 4:  # negative control: latent 1 also sees frames 3-4 (unknown)
        assert np.abs(np.asarray((z - z_cond) * mask)).max() > 1e-4
    else:  # factor 2: latent 1 sees frames 1-2, both given
        np.testing.assert_allclose(np.asarray(z * mask), np.asarray(z_cond * mask), atol=1e-6)


def test_mean_of_k_is_the_mean_of_k_rollouts(overfit_run, tmp_path):
    cfg, wd, _ = overfit_run
    s = sample.load(wd)
    cond = np.stack(FixedSource(cfg).videos[:2])[:, : cfg.data.n_cond]
    key = jax.random.key(0)
    one = s.generate(cond, key, steps=2)
    np.testing.assert_array_equal(s.generate(cond, key, steps=2, mean_of=1), one)
    mean = s.generate(cond, key, steps=2, mean_of=3).astype(float)
    # the three rollouts one by one, each from its member's keys
    rows = jax.vmap(lambda i: jax.random.fold_in(key, i))(jax.numpy.arange(2))
    given = train.given_video(np.concatenate(
        [cond, np.zeros((2, cfg.data.frames - cfg.data.n_cond, *cond.shape[2:]), np.uint8)], 1),
        cfg.data.n_cond)
    each = [np.array(sample._generate(s, jax.numpy.asarray(given), sample.member_keys(rows, j),
                                      2)).astype(float) for j in range(3)]
    np.testing.assert_array_equal(each[0][:, cfg.data.n_cond:], one[:, cfg.data.n_cond:])
    gen = np.stack(each)[:, :, cfg.data.n_cond:]
    avg = gen.mean(axis=0)
    inside = ((gen > 0) & (gen < 255)).all(axis=0)  # no member clipped to 0 or 255
    assert inside.mean() > 0.5
    # each member is rounded, and so is the mean: at most 1 apart where nothing clipped
    assert np.abs(mean[:, cfg.data.n_cond:] - avg)[inside].max() <= 1.0
    assert np.abs(gen[0] - avg)[inside].max() > 1.0  # the members differ
    # an export's sampling.json sets the default; a bad one is refused by name
    exported = checkpoint.export(wd, str(tmp_path / "export"))
    with open(os.path.join(exported, sample.SAMPLING_FILE), "w") as f:
        json.dump({"mean_of": 3, "steps": 2}, f)
    np.testing.assert_array_equal(sample.load(exported).generate(cond, key), mean)
    with open(os.path.join(exported, sample.SAMPLING_FILE), "w") as f:
        json.dump({"mean": 3}, f)
    with pytest.raises(ValueError, match="sampling.json"):
        sample.load(exported)
