"""`physim train --dry-run` targets (models.aot) and the train loop's MFU: a dry run on a
forced multi-device CPU mesh, a deviceless TPU slice (when libtpu is installed), clear
errors for a missing plugin, and an MFU that counts the DiT's FLOPs, not the VAE's."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from models import aot, checkpoint, configs, train

pytestmark = pytest.mark.usefixtures("fast_compile")

_FORCED = r"""
import json, jax
from models import configs, train
assert jax.device_count() == 4
out = {}
for name, sets in (("dp", []), ("fsdp", ["train.fsdp=4"]), ("remat", ["dit.remat=true"]),
                   ("accum", ["train.accum_steps=2"])):
    cfg = configs.apply_overrides(configs.get_preset("dit-test-latent"),
                                  ["train.batch_size=8", "dit.width=64", "dit.heads=4"] + sets)
    out[name] = train.dry_run(cfg, cached=True)
print(json.dumps(out))
"""


def test_dry_run_on_four_forced_cpu_devices_reports_consistent_memory_and_flops():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1")
    r = subprocess.run([sys.executable, "-c", _FORCED], env=env, capture_output=True,
                       text=True, timeout=1200, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    dp, fsdp = out["dp"], out["fsdp"]
    assert dp["mesh"] == {"data": 4, "fsdp": 1} and fsdp["mesh"] == {"data": 1, "fsdp": 4}
    assert dp["target"] == "local" and not dp["deviceless"] and dp["micro_batch_per_device"] == 2
    assert out["accum"]["micro_batch_per_device"] == 1
    for r in out.values():
        mem = r["memory_per_device"]
        assert mem["peak_estimate_bytes"] == (mem["argument_size_in_bytes"]
                                              + mem["output_size_in_bytes"]
                                              + mem["temp_size_in_bytes"]
                                              - mem["alias_size_in_bytes"])
        assert mem["alias_size_in_bytes"] > 0  # the state is donated
        assert r["flops_per_step"] == pytest.approx(4 * r["flops_per_step_per_device"])
        assert r["compile_s"] > 0 and r["tokens_per_video"] == 8
    # Replicated: every device holds params, two Adam moments and the EMA (4 x float32);
    # FSDP over 4 devices holds about a quarter of that.
    state = 4 * 4 * dp["params"]
    assert dp["memory_per_device"]["argument_size_in_bytes"] >= state
    assert fsdp["memory_per_device"]["argument_size_in_bytes"] < 0.5 * state
    # Data parallel: every device runs the whole optimizer and EMA update; FSDP splits it,
    # so its global count is lower, and the forward and backward passes are the same work.
    assert 0.6 * dp["flops_per_step"] < fsdp["flops_per_step"] < dp["flops_per_step"]
    assert out["remat"]["flops_per_step"] > dp["flops_per_step"]  # the forward, again


@pytest.mark.skipif(importlib.util.find_spec("libtpu") is None,
                    reason="libtpu not installed (pip install 'physim[tpu]')")
def test_deviceless_tpu_slice_compiles_the_step_in_bf16_for_its_chips():
    cfg = configs.apply_overrides(configs.get_preset("dit-test-latent"),
                                  ["train.batch_size=8", "train.fsdp=2"])
    r = train.dry_run(cfg, cached=True, target="tpu:v5e:2x2")
    assert r["deviceless"] and r["devices"] == 4 and r["device"].startswith("TPU v5")
    assert r["mesh"] == {"data": 2, "fsdp": 2} and r["backend"] == "tpu"
    assert r["dtype"] == "bfloat16" and r["attention"] == "xla"
    assert r["hbm_per_device_bytes"] == 16 * 2**30 and r["fits"] is True
    assert r["memory_per_device"]["peak_estimate_bytes"] > 0 and r["flops_per_step"] > 0


def test_targets_are_parsed_and_a_missing_plugin_is_named():
    local = aot.get_target(None)
    assert local.name == "local" and not local.deviceless and len(local.devices) >= 1
    for bad in ("h100", "tpu:v5e", "gpu::8", "tpu:v9:2x2", "gpu:a999:8"):
        with pytest.raises(ValueError):
            aot.get_target(bad)
    if importlib.util.find_spec("jax_cuda13_plugin") is None:
        with pytest.raises(ValueError, match="CUDA plugin"):
            aot.get_target("gpu:h100:8")
    assert 'device_description_str: "NVIDIA H100 80GB HBM3"' in aot.gpu_target_config("h100")
    parser = argparse.ArgumentParser()
    train.add_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--preset", "dit-test", "--data", "synthetic",
                              "--workdir", "w", "--target", "tpu:v5e:2x2"])
    with pytest.raises(ValueError, match="--target needs --dry-run"):
        args.func(args)
    args = parser.parse_args(["train", "--preset", "dit-test", "--dry-run", "--target", "x"])
    with pytest.raises(ValueError, match="want 'local'"):
        args.func(args)
    assert aot.is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Ran out of memory in hbm"))
    assert not aot.is_out_of_memory(RuntimeError("INVALID_ARGUMENT: bad shape"))


def _frozen_vae(workdir):
    cfg = train.resolve_precision(configs.get_preset("vae-test"))
    tx, _ = train.make_optimizer(cfg.train)
    state, _, _ = train.init_state(cfg, tx, train.make_mesh(cfg.train))
    checkpoint.save(checkpoint.manager(workdir), 1, state,
                    {"config": configs.to_dict(cfg), "step": 1, "data": {}})


class _Fixed:
    def __init__(self, n=6):
        from models import data

        src = data.SyntheticSource(16, 4, seed=7)
        self.videos = [src[i] for i in range(n)]

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, i):
        return self.videos[i]


def test_mfu_counts_the_dit_not_the_vae_encode(tmp_path):
    vae = str(tmp_path / "vae")
    _frozen_vae(vae)
    cfg = configs.apply_overrides(configs.get_preset("dit-test-latent"),
                                  [f"vae_workdir={vae}", "train.steps=2"])
    wd = str(tmp_path / "run")
    train.train(cfg, _Fixed(), wd, progress=False)  # frames in, the VAE encodes in the step
    rows = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
    meta, _ = checkpoint.read_meta(wd)
    dit = train.dry_run(cfg, cached=True)["flops_per_step_per_device"]  # latents in, no VAE
    whole = train.dry_run(cfg, cached=False)["flops_per_step_per_device"]
    assert whole > 1.5 * dit  # the test VAE's encode is most of the step
    np.testing.assert_allclose(meta["flops_per_step"], dit, rtol=1e-3)
    np.testing.assert_allclose(meta["flops_per_step_with_vae"], whole, rtol=1e-3)
    for r in rows:
        np.testing.assert_allclose(r["flops_per_step"], dit, rtol=1e-3)
        np.testing.assert_allclose(r["mfu_with_vae"] / r["mfu"], whole / dit, rtol=1e-6)
