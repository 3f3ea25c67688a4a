#!/usr/bin/env bash
# Train the shipped models side by side on one GPU (the `device` machine): a smoke test, then each config
# for MINUTES of wall time; exports (safetensors + JSON + CSV log) are packed one tar per model into $OUT.
set -u
MINUTES=${MINUTES:-8}
CONFIGS=${CONFIGS:-"single_cell lattice lattice_conditional"}
DATA=${DATA:-data_cache/all.npz}
OUT=${OUT:-outputs}
INIT=${INIT:-}   # folder of exported models to continue from: $INIT/NAME
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)"
python3 -m train --config train/configs/cpu_tiny.yaml --data "$DATA" --limit 64 --max-steps 3 --runs /tmp/smoke \
  > "$OUT/smoke.log" 2>&1 || { tail -40 "$OUT/smoke.log"; exit 1; }
for c in $CONFIGS; do
  python3 -m train --config "train/configs/$c.yaml" --data "$DATA" --max-minutes "$MINUTES" ${INIT:+--init-from "$INIT/$c"} ${EXTRA:-} --runs runs \
    > "$OUT/$c.log" 2>&1 &
done
wait
for c in $CONFIGS; do
  tail -3 "$OUT/$c.log"
  [ -d "runs/$c/export" ] && tar -C "runs/$c" -cf "$OUT/$c.tar" export logs/metrics.csv logs/hparams.yaml
done
ls -la "$OUT"
