#!/usr/bin/env bash
# Score a tiny model the way every shipped card is scored (docs/results.md, issue 13):
# the seed-1 evaluation sets (128 ID / 128 OOD videos; collision 128 / 129), the model's
# rollouts, and the truth and copy-last references, each through
# `physim evaluate --metrics laws abnormal judge`. The folders are the ones
# scripts/model_card.py reads (OUT/eval-{id,ood}, OUT/eval-{truth,copy-last}-{id,ood}).
#
#   scripts/eval_tiny.sh WORKDIR_OR_CHECKPOINT SCENARIO OUT
#
# Evaluation sets are generated once under runs/final-eval (EVAL_SETS overrides) and reused.
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: $0 WORKDIR_OR_CHECKPOINT SCENARIO OUT" >&2; exit 2; }
model=$1 scenario=$2 out=$3
sets=${EVAL_SETS:-runs/final-eval}
case $scenario in
  uniform|parabola) n_id=128 n_ood=128 ;;
  collision) n_id=140 n_ood=180 ;;  # 128 / 129 videos once unrecordable draws are dropped
  *) echo "$0: scenario must be uniform, collision or parabola, got '$scenario'" >&2; exit 2 ;;
esac
[[ -e $model ]] || { echo "$0: no model at '$model'" >&2; exit 2; }
# the references are rendered at the model's own resolution (config.json's data.resolution)
res=$(python -c "import json, sys; print(json.load(open(sys.argv[1]))['data']['resolution'])" \
  "$model/config.json")
mkdir -p "$out"
for split in id ood; do
  n=n_$split
  data=$sets/$scenario-$split
  [[ -f $data/manifest.json ]] || physim generate "$scenario" --split "$split" --n "${!n}" \
    --seed 1 --out "$data" --workers 1 --no-progress
  physim sample --workdir "$model" --data "$data" --out "$out/gen-$split"
  physim evaluate "$out/gen-$split" --truth "$data" --out "$out/eval-$split" \
    --metrics laws abnormal judge
  for ref in truth copy-last; do
    [[ -f $out/eval-$ref-$split/results.json ]] && continue  # made once per OUT
    python -m models.baselines "$ref" --data "$data" --out "$out/$ref-$split" --resolution "$res"
    physim evaluate "$out/$ref-$split" --truth "$data" --out "$out/eval-$ref-$split" \
      --metrics laws abnormal judge
  done
done
if [[ $scenario == uniform ]]; then
  python "$(dirname "$0")/velocity_breakdown.py" "$out/gen-id" "$sets/uniform-id" --period 4
fi
