#!/usr/bin/env bash
# physim quickstart: set up, generate ID and OOD uniform-motion evaluation sets, roll out the
# shipped tiny DiT, score it and two references (ground-truth parse floor, copy-last-frame),
# and write a report (markdown + PNG plots + GIF strips) of the ID/OOD gap.
#
#   scripts/quickstart.sh                 # ~1 min on 2 cores with the shipped checkpoint
#   scripts/quickstart.sh --train         # retrain the tiny model from scratch first (slow)
#   scripts/quickstart.sh --smoke         # 2 videos per split (the test runs this)
#   options: --out DIR (default runs/quickstart)  --n N (eval videos per split, default 64)
#            --checkpoint DIR (a training workdir; default: models/checkpoints/*, or
#            $PHYSIM_CHECKPOINT)  --train-steps N (with --train: fewer steps than the preset)
source "$(dirname "$0")/_venv.sh"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/.venv/numba-cache}"
export MPLBACKEND=Agg

OUT=runs/quickstart
N=64
TRAIN=0
SMOKE=0
STEPS=""
CKPT="${PHYSIM_CHECKPOINT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --train) TRAIN=1 ;;
    --smoke) SMOKE=1; N=2 ;;
    --out) OUT="$2"; shift ;;
    --n) N="$2"; shift ;;
    --checkpoint) CKPT="$2"; shift ;;
    --train-steps) STEPS="$2"; shift ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$CKPT" ]; then  # the shipped checkpoint: a training workdir under models/checkpoints
  for d in models/checkpoints/dit-px32 models/checkpoints/*; do
    if [ -f "$d/config.json" ] && [ -d "$d/checkpoints" ]; then CKPT="$d"; break; fi
  done
fi

RUN=(python scripts/experiments/run.py quickstart --scale cpu-mini --out "$OUT" --n-eval "$N")
t0=$(date +%s)
if [ "$TRAIN" = 1 ]; then
  [ -n "$STEPS" ] && RUN+=(--steps "$STEPS")
  # Estimate from the preset: 43 videos/s measured for dit-px32 on 2 shared cores (37 min).
  est=$(python -c "from models.configs import get_preset as g; t = g('dit-px32').train; \
s = ${STEPS:-0} or t.steps; print(f'{s} steps x {t.batch_size} videos: about {s * t.batch_size / 40 / 60:.0f} min')")
  echo "quickstart: training dit-px32 from scratch on uniform motion (physim train --preset" \
       "dit-px32 --data scenario:uniform${STEPS:+ --set train.steps=$STEPS}); $est on 2 cores" \
       "at ~40 videos/s (--train-steps N shortens it)"
  "${RUN[@]}"
  echo "quickstart: training took $(python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
t = [json.loads(x) for x in Path(sys.argv[1], "timings.jsonl").read_text().splitlines()]
print(f"{sum(r['seconds'] for r in t if r['kind'] == 'train') / 60:.1f} min")
EOF
)"
elif [ -n "$CKPT" ]; then
  echo "quickstart: rolling out the checkpoint in $CKPT"
  "${RUN[@]}" --checkpoint "$CKPT"
else
  echo "quickstart: NOTE no checkpoint is shipped (nothing under models/checkpoints/ with" \
       "config.json); scoring the two references only. Run with --train to train one," \
       "or --checkpoint DIR to use yours."
  "${RUN[@]}" --no-train
fi
echo "quickstart: done in $(( $(date +%s) - t0 )) s; report: $OUT/report/report.md"
