"""Two real processes (``jax.distributed`` on localhost, one CPU device each) train as one
job: a latent DiT on a frozen test VAE (the paper's setup), a fresh start stopped after
step 2, then a resume from that checkpoint (a second ``train`` call: the state and the VAE
are restored from disk into the global sharding, the paths that used to crash); its losses
equal those of one process on the same global batches."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from models import checkpoint, configs, data, train

pytestmark = pytest.mark.usefixtures("fast_compile")

_SCRIPT = r"""
import sys
import jax
pid, n, port, root, vae = sys.argv[1:6]
pid, n = int(pid), int(n)
if n > 1:
    jax.distributed.initialize(f"localhost:{port}", num_processes=n, process_id=pid)
assert jax.process_count() == n and jax.device_count() == n, jax.devices()
from models import configs, data, train
src = data.SyntheticSource(16, 4)
# Global batch 4, 4 steps, a log line per step, a checkpoint every 2.
cfg = configs.apply_overrides(configs.get_preset("dit-test-latent"), [f"vae_workdir={vae}"])
if n > 1:
    train.train(cfg, src, f"{root}/lat", progress=False, stop_at=2)  # "killed" after step 2
train.train(cfg, src, f"{root}/lat", progress=False)  # 2 processes: resumes at step 3
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(root, vae, cache):
    """The 1-process job and the 2-process job, all three processes at once."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1",
               JAX_DISABLE_MOST_OPTIMIZATIONS="1", JAX_COMPILATION_CACHE_DIR=cache,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    port = str(_port())
    jobs = [(1, 0, "n1"), (2, 0, "n2"), (2, 1, "n2")]
    return [subprocess.Popen([sys.executable, "-c", _SCRIPT, str(p), str(n), port,
                              str(root / tag), vae], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for n, p, tag in jobs]


def _frozen_vae(workdir):
    """A test VAE checkpoint at its initial weights (frozen: no training needed)."""
    cfg = train.resolve_precision(configs.get_preset("vae-test"))
    tx, _ = train.make_optimizer(cfg.train)
    state, _, _ = train.init_state(cfg, tx, train.make_mesh(cfg.train))
    checkpoint.save(checkpoint.manager(workdir), 1, state,
                    {"config": configs.to_dict(cfg), "step": 1, "data": {}})


def _wait(procs):
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]


def _losses(workdir):
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    return [r["step"] for r in rows], np.array([r["loss"] for r in rows])


def test_two_processes_start_restart_and_latent_match_one(tmp_path):
    vae = str(tmp_path / "vae")
    _frozen_vae(vae)
    _wait(_launch(tmp_path, vae, str(tmp_path / "xla-cache")))

    steps1, lat1 = _losses(tmp_path / "n1" / "lat")
    steps2, lat2 = _losses(tmp_path / "n2" / "lat")
    assert steps1 == steps2 == [1, 2, 3, 4]  # resumed at 3: no step ran twice
    np.testing.assert_allclose(lat2, lat1, rtol=1e-5)
    assert np.ptp(lat1) > 1e-3  # four different batches: a real comparison
    # One latent scale for the job, from the global batch (each host's half differs).
    s1 = checkpoint.read_meta(str(tmp_path / "n1" / "lat"))[0]["latent_scale"]
    s2 = checkpoint.read_meta(str(tmp_path / "n2" / "lat"))[0]["latent_scale"]
    np.testing.assert_allclose(s2, s1, rtol=1e-6)
    cfg = configs.apply_overrides(configs.get_preset("dit-test-latent"), [f"vae_workdir={vae}"])
    half = data.BatchIterator(data.SyntheticSource(16, 4), 4, 4, process_index=0,
                              process_count=2).batch(0)
    _, fz = train.load_frozen_vae(cfg, half)
    assert abs(float(fz["scale"]) - s1) > 1e-4 * s1  # negative control: a half batch's scale
