#!/usr/bin/env bash
# DiT train steps at 128² (latent 8x16x16x4, 512 tokens) on the local accelerator: one
# JSON line per (preset, device count, attention kernel) with step time, peak memory,
# FLOPs and MFU. Device counts: 1 and all local devices (the per-device batch stays BATCH);
# attention: cuDNN flash and XLA on GPU (dit.attention=cudnn / xla), XLA elsewhere.
#   scripts/gpu_check.sh                          # DiT-S, DiT-B, DiT-L, batch 32/device, 10 steps
#   PRESETS="dit-s" ATTN="xla" REMAT=1 scripts/gpu_check.sh
#   PRESETS="dit-test" STEPS=2 BATCH=2 scripts/gpu_check.sh   # CPU smoke test
# The VAE is left out (random latents of the right shape): this measures the DiT alone.
# A configuration that fails (e.g. out of memory) prints {"error": ...} and the rest go on.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
PRESETS=${PRESETS:-"dit-s dit-b dit-l"}
STEPS=${STEPS:-10}
BATCH=${BATCH:-32}
ATTN=${ATTN:-}
REMAT=${REMAT:-0}
"$PY" - "$STEPS" "$BATCH" "$ATTN" "$REMAT" $PRESETS <<'PYEOF'
import json, sys
import jax
from models import configs, train
steps, batch, attn, remat, names = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                    sys.argv[4] == "1", sys.argv[5:])
backend = jax.default_backend()
kernels = attn.split(",") if attn else (["cudnn", "xla"] if backend == "gpu" else ["xla"])
counts = sorted({1, jax.local_device_count()})
print(f"# jax {jax.__version__} backend={backend} devices={jax.local_devices()}", flush=True)
for name in names:
    for n in counts:
        for kernel in kernels:
            sets = [f"train.batch_size={batch * n}", f"dit.attention={kernel}",
                    f"dit.remat={remat}"]
            try:
                cfg = configs.apply_overrides(configs.get_preset(name), sets)
                row = train.benchmark(cfg, steps, devices=n)
            except Exception as e:  # noqa: BLE001 report and go on (OOM, unsupported kernel)
                row = {"preset": name, "devices": n, "attention": kernel,
                       "error": f"{type(e).__name__}: {str(e)[:300]}"}
            print(json.dumps(row), flush=True)
PYEOF
