#!/usr/bin/env bash
# A few DiT train steps at 128² (latent 8x16x16x4, 512 tokens) on the local accelerator:
# prints step time, peak memory, FLOPs and MFU per preset, one JSON line each.
#   scripts/gpu_check.sh                          # DiT-S and DiT-B, batch 32, 10 steps
#   PRESETS="dit-test" STEPS=2 BATCH=2 scripts/gpu_check.sh   # CPU smoke test
# The VAE is left out (random latents of the right shape): this measures the DiT alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python
PRESETS=${PRESETS:-"dit-s dit-b"}
STEPS=${STEPS:-10}
BATCH=${BATCH:-32}
"$PY" - "$STEPS" "$BATCH" $PRESETS <<'PYEOF'
import json, sys
import jax
from models import configs, train
steps, batch, names = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
print(f"# jax {jax.__version__} backend={jax.default_backend()} devices={jax.devices()}",
      flush=True)
for name in names:
    cfg = configs.apply_overrides(configs.get_preset(name), [f"train.batch_size={batch}"])
    print(json.dumps(train.benchmark(cfg, steps)), flush=True)
PYEOF
