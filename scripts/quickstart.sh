#!/usr/bin/env bash
# physim quickstart: set up, generate ID and OOD evaluation sets of uniform motion,
# collision and parabola, roll out the shipped tiny DiTs (models/checkpoints/index.json, one
# per scenario), score them and two references (ground-truth parse floor, copy-last-frame),
# and write a report (markdown + PNG plots incl. v-hat against v + GIF strips).
#
#   scripts/quickstart.sh                 # ~2-3 min on 2 cores with the shipped checkpoints
#   scripts/quickstart.sh --train         # retrain the three tiny models first (slow: hours)
#   scripts/quickstart.sh --smoke         # 2 videos per split (the test runs this)
#   options: --out DIR (default runs/quickstart)  --n N (eval videos per split, default 64)
#            --checkpoint [SCENARIO=]DIR (repeatable; a training workdir; default: the
#            shipped ones, or $PHYSIM_CHECKPOINT)  --train-steps N (with --train)
source "$(dirname "$0")/_venv.sh"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/.venv/numba-cache}"
export MPLBACKEND=Agg

OUT=runs/quickstart
N=64
TRAIN=0
SMOKE=0
STEPS=""
CKPTS=()
[ -n "${PHYSIM_CHECKPOINT:-}" ] && CKPTS=("$PHYSIM_CHECKPOINT")
while [ $# -gt 0 ]; do
  case "$1" in
    --train) TRAIN=1 ;;
    --smoke) SMOKE=1; N=2 ;;
    --out) OUT="$2"; shift ;;
    --n) N="$2"; shift ;;
    --checkpoint) CKPTS+=("$2"); shift ;;
    --train-steps) STEPS="$2"; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ ${#CKPTS[@]} = 0 ]; then  # the shipped checkpoints: SCENARIO=DIR per quickstart model
  mapfile -t CKPTS < <(python -m models.checkpoint --shipped --quickstart)
fi
RUN=(python scripts/experiments/run.py quickstart --scale cpu-mini --out "$OUT" --n-eval "$N")
t0=$(date +%s)
if [ "$TRAIN" = 1 ]; then
  [ -n "$STEPS" ] && RUN+=(--steps "$STEPS")
  echo "quickstart: training the quickstart's models from scratch, one after the other:" \
       "$(python -c "from evals.experiments import QUICKSTART_MODELS as q
from models.configs import get_preset as g
print('; '.join(f'physim train --preset {m.preset} --data scenario:{sc}'
                f' ({${STEPS:-0} or g(m.preset).train.steps} steps)' for sc, m in q.items()))")" \
       "${STEPS:+with --set train.steps=$STEPS}; 90-110 min each on one core" \
       "(docs/benchmarks.md); --train-steps N shortens it"
  "${RUN[@]}"
  echo "quickstart: training took $(python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
t = [json.loads(x) for x in Path(sys.argv[1], "timings.jsonl").read_text().splitlines()]
print(f"{sum(r['seconds'] for r in t if r['kind'] == 'train') / 60:.1f} min")
EOF
)"
elif [ ${#CKPTS[@]} -gt 0 ]; then
  echo "quickstart: rolling out the checkpoints ${CKPTS[*]}"
  "${RUN[@]}" "${CKPTS[@]/#/--checkpoint=}"
else
  echo "quickstart: NOTE no checkpoint is shipped (models/checkpoints/index.json lists no" \
       "quickstart model); scoring the two references only. Run with --train to train" \
       "them, or --checkpoint DIR to use yours."
  "${RUN[@]}" --no-train
fi
echo "quickstart: done in $(( $(date +%s) - t0 )) s; report: $OUT/report/report.md"
