#!/usr/bin/env bash
# One lent-GPU session (the `device` machine, no pymatgen there): time the memory formats, then continue the
# shipped models from their weights side by side until a deadline; exports (safetensors + JSON + CSV log)
# come back one tar per model in $OUT. A run that dies in its first minutes is restarted once in the default
# memory format. Carry the .npz bundles named in DATA (from `python -m train.prepare`).
#
#   DATA="data_cache/three.npz data_cache/mp_bulk.npz" SECONDS_BUDGET=540 bash train/gpu_session.sh
set -u
DATA=${DATA:-"data_cache/three.npz data_cache/mp_bulk.npz"}
CONFIGS=${CONFIGS:-"single_cell lattice"}
SECONDS_BUDGET=${SECONDS_BUDGET:-540}   # from the start of this script to the end of training
BATCH=${BATCH:-256}
WORKERS=${WORKERS:-5}
SETS=${SETS:-"lr=6e-4 warmup_steps=100 kl_warmup_steps=1 val_every_steps=200 val_batches=4 checkpoint_every_steps=500"}
OUT=${OUT:-outputs}
INIT=${INIT:-checkpoints}   # continue from $INIT/NAME
CL=${CL:-}                  # channels_last true/false; empty: time both and take the faster
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)
left() { echo $(( start + SECONDS_BUDGET - $(date +%s) )); }

nvidia-smi -L
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
set -- $DATA
[ -z "$CL" ] && timeout 120 python3 benchmarks/train_step.py --data "$1" --batch "$BATCH" --steps 6 --layouts 2>&1 | tee "$OUT/layouts.txt"
[ -z "$CL" ] && CL=$(sed -n 's/^best_channels_last=//p' "$OUT/layouts.txt"); CL=${CL:-false}
echo "channels_last=$CL; $(left) s left"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$OUT/gpu_use.csv" 2>&1 &
smi=$!

launch() {  # name channels_last
  local minutes
  minutes=$(python3 -c "print(max(0.5, ($(left) - 45) / 60))")
  echo "$1: $minutes min, channels_last=$2"
  python3 -m train --config "train/configs/$1.yaml" --data $DATA --init-from "$INIT/$1" --batch-size "$BATCH" \
    --num-workers "$WORKERS" --max-minutes "$minutes" --runs runs --set name="$1" channels_last="$2" $SETS \
    > "$OUT/$1.log" 2>&1 &
  pids[$1]=$!
}
declare -A pids
for c in $CONFIGS; do launch "$c" "$CL"; done
sleep 100
for c in $CONFIGS; do
  if ! kill -0 "${pids[$c]}" 2>/dev/null && ! wait "${pids[$c]}" && [ "$CL" = true ]; then
    echo "$c died early:"; tail -5 "$OUT/$c.log"; launch "$c" false
  fi
done
wait "${pids[@]}"
for c in $CONFIGS; do
  echo "== $c"; grep -E "trained|Error|error" "$OUT/$c.log" | tail -3
  [ -d "runs/$c/export" ] && tar -C "runs/$c" -cf "$OUT/$c.tar" export logs/metrics.csv
done
kill $smi 2>/dev/null
ls -la "$OUT"
