"""Accelerator-scale training features on CPU: remat and gradient accumulation keep the
loss, the attention kernel choice, FSDP/batch checks, dry-run, preemption, latent cache,
paper presets refused on CPU, distributed flags, epath workdirs."""

import argparse
import dataclasses
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models import checkpoint, configs, data, dit, train

pytestmark = pytest.mark.usefixtures("fast_compile")


def _cfg(name="dit-test", *overrides):
    return train.resolve_precision(configs.apply_overrides(configs.get_preset(name), overrides))


def _batch(cfg, seed=3):
    src = data.SyntheticSource(cfg.data.resolution, cfg.data.frames, seed=seed)
    return np.stack([src[i] for i in range(cfg.train.batch_size)])


def _one_step(cfg, batch):
    """(metrics of step 2, params after it, initial params) of a fresh ``cfg`` model trained
    two steps on ``batch`` (the warm-up's first step has lr 0: the second moves the weights)."""
    mesh = train.make_mesh(cfg.train)
    tx, schedule = train.make_optimizer(cfg.train)
    state, _, (g, t, r) = train.init_state(cfg, tx, mesh)
    state["step"] = jnp.int32(0)
    init = state["params"]
    step = jax.jit(train.make_step(train.make_loss(cfg, g, t, r), tx, schedule, cfg.train))
    for _ in range(2):
        state, m = step(state, jnp.asarray(batch), None)
    return {k: float(v) for k, v in m.items()}, state["params"], init


def _same_update(p_ref, p, p_init, tol=1e-3):
    """Two updates of the same weights agree: mean |difference| under ``tol`` of the mean
    step (element-wise checks would trip on Adam's first step, g / (|g| + eps), for the few
    gradients near eps, where float rounding changes the step)."""
    rows = list(zip(*(jax.tree.leaves(t) for t in (p_ref, p, p_init)), strict=True))
    diff = np.mean(np.concatenate([np.abs(np.ravel(a - b)) for a, b, _ in rows]))
    step = np.mean(np.concatenate([np.abs(np.ravel(a - c)) for a, _, c in rows]))
    assert step > 1e-5, step  # the update is real
    assert diff < tol * step, (diff, step)


def test_remat_gives_the_same_loss_and_gradients():
    cfg = _cfg()
    b = _batch(cfg)
    m0, p0, init = _one_step(cfg, b)
    m1, p1, _ = _one_step(_cfg("dit-test", "dit.remat=true"), b)
    np.testing.assert_allclose(m1["loss"], m0["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["grad_norm"], m0["grad_norm"], rtol=1e-5)
    _same_update(p0, p1, init)


def test_accumulation_gives_the_same_loss_and_update_as_the_full_batch():
    base = _cfg("dit-test", "train.example_noise=true")
    b = _batch(base)
    m1, p1, init = _one_step(base, b)
    m2, p2, _ = _one_step(_cfg("dit-test", "train.accum_steps=2"), b)  # 2 micro-batches of 2
    np.testing.assert_allclose(m2["loss"], m1["loss"], rtol=1e-5)
    np.testing.assert_allclose(m2["grad_norm"], m1["grad_norm"], rtol=1e-5)
    _same_update(p1, p2, init)
    # Negative controls: the batch-wide noise draw (default numerics) is another loss, and
    # its update is far from the full batch's.
    m0, p0, _ = _one_step(_cfg(), b)
    assert abs(m0["loss"] - m1["loss"]) > 1e-4 * m1["loss"]
    with pytest.raises(AssertionError):
        _same_update(p1, p0, init)


def test_attention_kernel_choice_and_clear_errors():
    assert jax.default_backend() == "cpu"
    assert dit.attention_impl("auto", jnp.bfloat16) == "xla"  # cudnn only on GPU
    assert dit.attention_impl("xla", jnp.float32) == "xla"
    for name in ("cudnn", "tpu_flash"):
        with pytest.raises(ValueError, match="backend is 'cpu'"):
            dit.attention_impl(name, jnp.bfloat16)
    with pytest.raises(ValueError, match="dit.attention"):
        configs.apply_overrides(configs.get_preset("dit-test"), ["dit.attention=flash"])
    q = jax.random.normal(jax.random.key(0), (2, 8, 2, 6))
    np.testing.assert_array_equal(dit.attention(q, q, q, "xla"),
                                  jax.nn.dot_product_attention(q, q, q))


def test_batch_and_fsdp_mismatches_are_named():
    mesh = train.make_mesh(_cfg().train)
    assert dict(mesh.shape) == {"data": 1, "fsdp": 1}
    with pytest.raises(ValueError, match="train.fsdp=2 does not divide the 1 devices"):
        train.make_mesh(_cfg("dit-test", "train.fsdp=2").train)
    with pytest.raises(ValueError, match="not divisible by train.accum_steps 3"):
        _cfg("dit-test", "train.accum_steps=3")
    # Sharding rule: the largest axis divisible by the fsdp size, scalars replicated.
    fake = jax.sharding.AbstractMesh((1, 4), ("data", "fsdp"))
    assert train.leaf_sharding(fake, (6, 8)).spec == jax.sharding.PartitionSpec(None, "fsdp")
    assert train.leaf_sharding(fake, (3, 5)).spec == jax.sharding.PartitionSpec()
    assert train.leaf_sharding(fake, ()).spec == jax.sharding.PartitionSpec()


def test_dry_run_reports_memory_flops_and_tokens_without_writing(tmp_path, capsys):
    r = train.dry_run(_cfg())
    assert r["tokens_per_video"] == 4 * 4 * 4 and r["mesh"] == {"data": 1, "fsdp": 1}
    assert r["flops_per_step"] > 0 and r["params"] > 0
    mem = r["memory_per_device"]
    assert mem["argument_size_in_bytes"] > 4 * r["params"]  # params, Adam moments, EMA
    assert mem["peak_estimate_bytes"] > 0
    # The paper's DiT-S at 128²: 8x16x16 latents in 1x2x2 patches.
    assert train.tokens_per_video(configs.get_preset("dit-s")) == 512
    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--preset", "dit-test-latent", "--dry-run"])
    assert args.func(args) == 0  # a latent preset: the VAE enters by shape, none needed
    out = json.loads(capsys.readouterr().out)
    assert out["preset"] == "dit-test-latent" and out["flops_per_step"] > 0
    assert os.listdir(tmp_path) == []


def test_paper_presets_refused_on_cpu_and_distributed_flags_checked(tmp_path):
    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers())
    wd = tmp_path / "w"
    args = parser.parse_args(["train", "--preset", "dit-s", "--data", "synthetic",
                              "--workdir", str(wd)])
    with pytest.raises(ValueError, match=r"paper-scale .* backend is 'cpu'.*--allow-cpu"):
        args.func(args)
    assert not wd.exists()
    for bad, msg in ((["--coordinator", "localhost:1"], "need --distributed"),
                     (["--distributed", "--num-processes", "2"], "also needs --coordinator"),
                     (["--distributed", "--coordinator", "h:1", "--num-processes", "2",
                       "--process-id", "2"], r"must be in \[0, --num-processes 2\)")):
        args = parser.parse_args(["train", "--preset", "dit-test", "--data", "synthetic",
                                  "--workdir", str(wd), *bad])
        with pytest.raises(ValueError, match=msg):
            args.func(args)
    assert not wd.exists()


def test_url_workdirs_are_not_made_local_paths():
    assert str(checkpoint.epath_of("gs://bucket/run")) == "gs://bucket/run"
    assert not checkpoint.is_local("gs://bucket/run")
    assert str(checkpoint.epath_of("rel/run")) == os.path.abspath("rel/run")


class _Terminating:
    """A batch iterator that sends this process SIGTERM when batch ``at`` is fetched."""

    def __init__(self, it, at):
        self.it, self.at = it, at

    def __next__(self):
        if self.it.step == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return next(self.it)

    def get_state(self):
        return self.it.get_state()

    def set_state(self, s):
        self.it.set_state(s)


def test_sigterm_saves_a_checkpoint_and_the_resumed_run_is_bit_identical(tmp_path):
    cfg = configs.get_preset("dit-test")  # 4 steps, checkpoints at 2 and 4
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, ckpt_every=100))
    src = data.SyntheticSource(16, 4)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train.train(cfg, src, a, progress=False)
    it = data.BatchIterator(src, 4, 4, seed=cfg.data.seed, flip=cfg.data.flip)
    before = signal.getsignal(signal.SIGTERM)
    m = train.train(cfg, _Terminating(it, 2), b, progress=False)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    meta, step = checkpoint.read_meta(b)
    assert m["preempted"] and 1 <= step < 4 and m["step"] == step
    assert meta["data"] == {"step": step}  # the batches consumed, not those prefetched
    train.train(cfg, src, b, progress=False)  # the same command resumes
    pa, pb = (checkpoint.load_weights(w, train.split_params(train.build_model(
        train.resolve_precision(cfg)))[1], ema=False)[0] for w in (a, b))
    for x, y in zip(jax.tree.leaves(pa), jax.tree.leaves(pb), strict=True):
        np.testing.assert_array_equal(x, y)


def _frozen_vae(workdir):
    """A test VAE checkpoint at its initial weights."""
    cfg = train.resolve_precision(configs.get_preset("vae-test"))
    tx, _ = train.make_optimizer(cfg.train)
    state, _, _ = train.init_state(cfg, tx, train.make_mesh(cfg.train))
    checkpoint.save(checkpoint.manager(workdir), 1, state,
                    {"config": configs.to_dict(cfg), "step": 1, "data": {}})


class _Fixed:
    def __init__(self, n=6):
        src = data.SyntheticSource(16, 4, seed=7)
        self.videos = [src[i] for i in range(n)]

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        return self.videos[i]


def test_latent_cache_equals_on_the_fly_latents_and_trains_alike(tmp_path):
    vae = str(tmp_path / "vae")
    _frozen_vae(vae)
    cfg = configs.apply_overrides(configs.get_preset("dit-test-latent"),
                                  [f"vae_workdir={vae}", "train.steps=2"])
    src = _Fixed()
    out = data.encode(cfg, src, str(tmp_path / "cache"), batch=4, shard_size=4)
    cache = data.LatentSource(out)
    assert len(cache) == 6 and len(cache.manifest["shards"]) == 2
    # Cached latents == the trainer's on-the-fly latents, both flips (scale 1).
    parts, frozen = train.load_frozen_vae(cfg, None, 1.0)
    frames = np.stack(src.videos)
    for flip in (0, 1):
        x = train.to_float(frames[:, :, :, ::-1] if flip else frames)
        z, zc = train.latents(cfg, parts, frozen, x)
        got = np.stack([cache[i][flip] for i in range(6)])  # (6, 2, t, h, w, C)
        np.testing.assert_allclose(got[:, 0], z, atol=1e-5)
        np.testing.assert_allclose(got[:, 1], zc, atol=1e-5)
    assert np.abs(got[:, 0] - got[:, 1]).max() > 1e-4  # temporal 2: given != true latents
    again = data.encode(cfg, src, str(tmp_path / "cache2"), batch=4, shard_size=4)
    assert [s["sha256"] for s in data.LatentSource(again).manifest["shards"]] == \
        [s["sha256"] for s in cache.manifest["shards"]]  # deterministic bytes
    with pytest.raises(ValueError, match="exists"):
        data.encode(cfg, src, out)
    # Training from the cache gives the losses of training on the frames.
    fly, cached = str(tmp_path / "fly"), str(tmp_path / "cached")
    train.train(cfg, src, fly, progress=False)
    train.train(cfg, data.open_source(f"latents:{out}", cfg.data), cached, progress=False)
    rows = [[json.loads(line)["loss"] for line in open(os.path.join(w, "metrics.jsonl"))]
            for w in (fly, cached)]
    assert len(rows[0]) == 2
    np.testing.assert_allclose(rows[1], rows[0], rtol=1e-5)
    s = [checkpoint.read_meta(w)[0]["latent_scale"] for w in (fly, cached)]
    np.testing.assert_allclose(s[1], s[0], rtol=1e-5)
    other = configs.apply_overrides(cfg, ["data.n_cond=2"])
    with pytest.raises(ValueError, match="n_cond"):
        train.train(other, cache, str(tmp_path / "bad"), progress=False)
