#!/usr/bin/env bash
# Refit everything a shipped model folder derives from its weights, after `python -m train.ship` put a new
# stage in it: the stage's validation metrics into the ledger, the aggregate latent prior, the cell head
# (single cell), the principal directions, the test metrics and figures, the random draws' realism, and the
# learning curve. About 40 minutes on this 2-core CPU for single_cell (the cell head takes ~19 of them).
#
#   NAME=single_cell VAL=runs/eval/val_stage7/metrics.json bash train/refresh.sh
#
# VAL: the val-split metrics.json that decided the stage was worth shipping (train.evaluate --split val).
# Needs data_cache/{three,mp_bulk}.npz from train.prepare and ../shared/data's CSVs.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${NAME:?NAME=single_cell or lattice}
VAL=${VAL:?VAL=path/to/val/metrics.json}
DIR=checkpoints/$NAME
OUT=${OUT:-runs/refresh/$NAME}
SHARED=${SHARED:-../shared/data}
CSVS="$SHARED/mp_ground_states.csv.gz $SHARED/perov_5_val.csv.gz $SHARED/carbon_24_val.csv.gz"
mkdir -p "$OUT"
step() { echo "== $(date +%H:%M:%S) $*"; }

step "ledger: validation metrics on the newest stage"
python -m train.ledger --checkpoint "$DIR" --metrics "$VAL"
step "latent prior"
python -m train.fit_prior --checkpoint "$DIR" --data data_cache/three.npz data_cache/mp_bulk.npz --limit 3000
if [ "$NAME" = single_cell ]; then
  step "cell head"
  python -m train.fit_cell --checkpoint "$DIR" --data data_cache/three.npz
fi
step "principal directions"
python -m crystal_explorer.directions --checkpoint "$DIR"
step "test metrics and figures"
python -m train.evaluate --checkpoint "$DIR" --data $CSVS data_cache/mp_bulk.npz --split test --limit 100 \
  --match --figures --out "$OUT/test"
step "random draws"
python -m train.sample_analysis --checkpoint "$DIR" --data $CSVS --n 500 --out "$OUT/samples"
cp "$OUT"/test/metrics.json "$OUT"/test/*.png "$OUT"/samples/samples.json "$OUT"/samples/nearest_neighbours.png "$DIR"/
step "learning curve"
python -m train.ledger --checkpoint "$DIR" --plot
step "done: $DIR refreshed; the README tables still need the new numbers ($OUT)"
