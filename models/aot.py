"""Where ``physim train --dry-run`` compiles the step: this machine's devices, or the devices
of a machine this host does not have (deviceless ahead-of-time compilation).

``--target`` names the machine (``models.train.dry_run``):

* ``local`` (default): ``jax.devices()``, as a training run here would use them.
* ``tpu:GEN:TOPOLOGY``, e.g. ``tpu:v5e:4x4`` (a 16-chip v5e slice): the chips of a TPU slice
  as compile-only devices from libtpu (``jax.experimental.topologies.get_topology_desc``, the
  way MaxText's ``train_compile.py`` compiles for a slice it does not hold). Needs libtpu
  (``pip install "physim[tpu]"`` installs the build that matches the installed jaxlib); works
  on a CPU-only host. XLA:TPU refuses a program that does not fit the chip's HBM, so the
  compile itself is the fit test.
* ``gpu:MODEL:N`` or ``gpu:MODEL:HOSTSxN``, e.g. ``gpu:h100:8``: N GPUs per host (one host
  unless HOSTS is given) as compile-only devices of the JAX CUDA plugin, described by an XLA
  GPU target config (:data:`GPU_SPECS`). Needs ``jax-cuda13-plugin``, ``jax-cuda13-pjrt`` and
  ``nvidia-cuda-nvcc`` (ptxas) of the installed jaxlib's version, and a process whose JAX
  platforms are ``cpu`` (the CLI sets it; the plugin's start-up checks want a GPU otherwise).

A deviceless compile is the compiler's own account of the step (the same HLO passes,
partitioner and memory analysis as on the machine); what it cannot give is a run.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

GiB = 2**30

# TPU generations: (libtpu topology prefix, HBM bytes per chip, dense bf16 FLOP/s per chip,
# device kind). Every generation here has 4 chips per host in a 2x2 block.
TPU_SPECS = {
    "v4": ("v4", 32 * GiB, 275e12),
    "v5e": ("v5e", 16 * GiB, 197e12),
    "v5p": ("v5p", 95 * GiB, 459e12),
}

# GPU models: the fields of XLA's GpuTargetConfigProto the compiler reads (from the vendor's
# data sheet and CUDA device queries), HBM bytes and dense bf16 FLOP/s per device.
GPU_SPECS = {
    "h100": {
        "name": "NVIDIA H100 80GB HBM3", "memory": 84942979072, "peak": 989e12,
        "cc": (9, 0), "cores": 132, "fpus_per_core": 128, "clock_ghz": 1.98,
        "bandwidth": 3352320000000, "l2": 52428800, "smem_block": 49152,
        "smem_core": 233472, "smem_optin": 232448,
    },
}


@dataclasses.dataclass(frozen=True)
class Target:
    """A machine to compile for.

    ``platform``: the JAX backend the step is built for ("cpu", "gpu", "tpu": picks the
    precision and the attention kernel); ``devices``: its devices, compile-only for a
    deviceless target; ``hbm_bytes``: memory per device (None: unknown);
    ``peak_flops``: dense bf16 FLOP/s per device (None: unknown)."""

    name: str
    platform: str
    devices: tuple
    device_kind: str
    hbm_bytes: int | None
    peak_flops: float | None
    deviceless: bool


def gpu_target_config(model: str) -> str:
    """XLA GpuTargetConfigProto (text format) of GPU ``model`` (a key of :data:`GPU_SPECS`)."""
    s = GPU_SPECS[model]
    major, minor = s["cc"]
    return f"""
gpu_device_info {{
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: {s["smem_block"]}
  shared_memory_per_core: {s["smem_core"]}
  shared_memory_per_block_optin: {s["smem_optin"]}
  threads_per_core_limit: 2048
  core_count: {s["cores"]}
  fpus_per_core: {s["fpus_per_core"]}
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: {s["bandwidth"]}
  l2_cache_size: {s["l2"]}
  clock_rate_ghz: {s["clock_ghz"]}
  device_memory_size: {s["memory"]}
  cuda_compute_capability {{ major: {major} minor: {minor} }}
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}}
platform_name: "CUDA"
dnn_version_info {{ major: 9 minor: 10 }}
runtime_version {{ major: 13 }}
device_description_str: "{s["name"]}"
"""


def _local(peak_fn) -> Target:
    devs = tuple(jax.devices())
    stats = getattr(devs[0], "memory_stats", lambda: None)() or {}
    return Target("local", jax.default_backend(), devs, devs[0].device_kind,
                  stats.get("bytes_limit"), peak_fn(devs[0]), deviceless=False)


def _tpu(gen: str, topology: str) -> Target:
    from jax.experimental import topologies

    if gen not in TPU_SPECS:
        raise ValueError(f"unknown TPU generation {gen!r}; known: {sorted(TPU_SPECS)}")
    prefix, hbm, peak = TPU_SPECS[gen]
    dims = topology.split("x")
    try:
        import libtpu  # noqa: F401  (only to name the missing package)
    except ImportError:
        raise ValueError(f"--target tpu:{gen}:{topology} needs libtpu: pip install "
                         "'physim[tpu]' (it installs the libtpu of the installed jaxlib; "
                         "a CPU-only host is fine)") from None
    topo = topologies.get_topology_desc(
        topology_name=f"{prefix}:{topology}", platform="tpu", chip_config_name="default",
        chips_per_host_bounds=(2, 2, 1), num_slices=1, wrap=(False,) * max(3, len(dims)))
    devs = tuple(topo.devices)
    return Target(f"tpu:{gen}:{topology}", "tpu", devs, devs[0].device_kind, hbm, peak,
                  deviceless=True)


def _gpu(model: str, shape: str) -> Target:
    from jax.experimental import topologies

    if model not in GPU_SPECS:
        raise ValueError(f"unknown GPU model {model!r}; known: {sorted(GPU_SPECS)}")
    hosts, _, per_host = shape.rpartition("x")
    try:
        hosts, per_host = int(hosts or 1), int(per_host)
    except ValueError:
        raise ValueError(f"gpu target shape {shape!r}: want N or HOSTSxN") from None
    try:
        topo = topologies.get_topology_desc(platform="cuda", topology=f"1x{hosts}x{per_host}",
                                            target_config=gpu_target_config(model))
    except NotImplementedError as e:
        raise ValueError(
            f"--target gpu:{model}:{shape}: no CUDA topology ({e}). It needs the JAX CUDA "
            "plugin of the installed jaxlib (jax-cuda13-plugin, jax-cuda13-pjrt, "
            "nvidia-cuda-nvcc) and JAX platforms 'cpu' set before JAX starts "
            "(JAX_PLATFORMS=cpu; `physim train --dry-run --target` sets it)") from None
    devs = tuple(topo.devices)
    s = GPU_SPECS[model]
    return Target(f"gpu:{model}:{shape}", "gpu", devs, devs[0].device_kind, s["memory"],
                  s["peak"], deviceless=True)


def get_target(spec: str | None, peak_fn=lambda d: None) -> Target:
    """The :class:`Target` named by ``spec`` (None or "local": this machine's devices;
    ``peak_fn(device)``: their peak FLOP/s). ``ValueError`` naming what is missing."""
    if spec in (None, "", "local"):
        return _local(peak_fn)
    kind, _, rest = spec.partition(":")
    gen, _, shape = rest.partition(":")
    if kind == "tpu" and gen and shape:
        return _tpu(gen, shape)
    if kind == "gpu" and gen and shape:
        return _gpu(gen, shape)
    raise ValueError(f"--target {spec!r}: want 'local', 'tpu:GEN:TOPOLOGY' (e.g. tpu:v5e:4x4) "
                     "or 'gpu:MODEL:N' / 'gpu:MODEL:HOSTSxN' (e.g. gpu:h100:8)")


def is_out_of_memory(err: Exception) -> bool:
    """Whether a compile error is XLA refusing a program that does not fit the device."""
    msg = str(err).lower()
    return any(s in msg for s in ("resource_exhausted", "out of memory", "ran out of memory"))


MEMORY_FIELDS = ("argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
                 "alias_size_in_bytes", "generated_code_size_in_bytes")


def memory_of(compiled) -> dict:
    """XLA's per-device memory analysis of ``compiled`` (bytes), with ``peak_estimate_bytes``
    = arguments + outputs + temporaries - aliased (donated buffers counted once)."""
    mem = compiled.memory_analysis()
    if mem is None:
        return {}
    out = {f: int(getattr(mem, f, 0) or 0) for f in MEMORY_FIELDS}
    out["peak_estimate_bytes"] = (out["argument_size_in_bytes"] + out["output_size_in_bytes"]
                                  + out["temp_size_in_bytes"] - out["alias_size_in_bytes"])
    return out


def flops_of(compiled) -> float | None:
    """XLA's FLOPs of one call of ``compiled``, per device (None where the backend gives no
    cost analysis, e.g. a deviceless GPU executable)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", 0.0)) if cost else None


def unoptimized_flops(lowered) -> float | None:
    """FLOPs of the whole (unpartitioned, unoptimised) program of ``lowered`` by XLA's HLO
    cost analysis on the host CPU backend: for a target whose executables give none (a
    deviceless GPU compile). Custom calls (cuDNN attention) count nothing; None if this
    JAX offers no such analysis (it is not public API)."""
    try:
        from jax._src import xla_bridge
        from jax._src.lib import _jax

        module = lowered.compiler_ir("hlo").as_hlo_module()
        cost = _jax.hlo_module_cost_analysis(xla_bridge.get_backend("cpu"), module)
    except Exception:  # noqa: BLE001 (private API: any failure means "not available")
        return None
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", 0.0)) if cost else None


def analytic_memory(cfg, params: int, devices: int) -> dict:
    """A rough per-device memory budget (bytes) of a DiT train step, to read beside XLA's
    analysis: what each part costs and what remat, FSDP and accumulation change.

    State: float32 parameters, two Adam moments and the EMA (16 bytes a parameter), split
    over ``train.fsdp`` devices; gradients 4 bytes a parameter (split likewise). Activations
    kept for the backward pass, per video per block, in the compute dtype (b bytes): about
    20 vectors of width D per token (residual, norms, q/k/v, RoPE'd q/k, attention output,
    projection, the 4D MLP hidden before and after GELU) = 20·N·D·b, plus the attention
    logits and probabilities H·N²·(b + 4) (softmax in float32) unless a flash kernel
    (cuDNN, Pallas) keeps them out of memory. With remat a block keeps only its input
    (N·D·b) and one block's activations exist at a time. Micro-batch = batch / accum /
    devices videos."""
    d, tc = cfg.dit, cfg.train
    n = int(np.prod(cfg.diffusion_shape[:3]) // np.prod(d.patch))  # tokens per video
    b = 2 if d.dtype in ("bfloat16", "float16") else 4
    micro = tc.batch_size // tc.accum_steps // devices
    dense = 20 * n * d.width * b
    scores = d.heads * n * n * (b + 4)
    flash = d.attention in ("cudnn", "tpu_flash")
    block = dense + (0 if flash else scores)
    if d.remat:
        acts = micro * (d.depth * n * d.width * b + block)
    else:
        acts = micro * d.depth * block
    state = 16 * params / tc.fsdp
    grads = 4 * params / tc.fsdp
    if tc.accum_steps > 1:
        grads *= 2  # the running mean of optax.MultiSteps and this micro-batch's
    return {"tokens": n, "micro_batch_per_device": micro, "state_bytes": int(state),
            "grad_bytes": int(grads), "activation_bytes_per_video_block": int(block),
            "attention_scores_bytes_per_video_block": int(scores),
            "activation_bytes": int(acts), "total_bytes": int(state + grads + acts)}
