#!/usr/bin/env bash
# Reproduce demo/checkpoint (`make demo-checkpoint`): the tiny AR1 of `make demo`, trained from
# scratch on the CPU with the package's own tools, every step a command a user could run:
#   1. demo-world episodes (seeds DEMO_SEEDS of every scenario) -> bags + CoC labels
#   2. the tiny base VLM: our own tokenizer trained on the prompt texts and the labels
#   3. `ar1 dataset build` on the bags with the labels
#   4. `ar1 train` stage 1 (CoC + trajectory tokens, cross-entropy), then stage 2 (expert)
#      in two runs (3 epochs, then 4 more at half the learning rate)
#   5. copy the final model/ to demo/checkpoint, then evaluate it on held-out seeds
#      (DEMO_HELDOUT_SEEDS, never trained on): `ar1 closed-loop` report in demo/EVAL.md.
# Outputs other than demo/ stay in build/demo_data (several GB of bags; delete at will).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
AR1="$(dirname "$PY")/ar1"
# Absolute: `ar1 train` resolves relative paths of its YAML against the YAML's folder.
DATA=$(realpath -m "${DEMO_DATA:-build/demo_data}")
SEEDS=${DEMO_SEEDS:-0-23}
HELDOUT=${DEMO_HELDOUT_SEEDS:-1000-1003}
WORKERS=${DEMO_WORKERS:-2}
start=$(date +%s)
step() { echo "== build_demo_checkpoint: $* ($(( $(date +%s) - start )) s)"; }

step "1/5 demo-world episodes, seeds $SEEDS"
$AR1 sim generate --scenarios all --seeds "$SEEDS" --out "$DATA/bags" --workers "$WORKERS"

step "2/5 tiny base VLM and tokenizer"
$PY -m ar1_ros.training.tiny_vlm --out "$DATA/base_vlm" --labels "$DATA/bags/labels.jsonl"

step "3/5 dataset"
mapfile -t BAGS < <(find "$DATA/bags" -mindepth 1 -maxdepth 1 -type d | sort)
# Resumable: bags already in the dataset (same settings) are kept.
$AR1 dataset build "${BAGS[@]}" --labels "$DATA/bags/labels.jsonl" --out "$DATA/dataset" \
  --no-progress

step "4/5 training: stage 1 (vlm), then stage 2 (expert)"
rm -rf "$DATA/stage1" "$DATA/stage2" "$DATA/stage2b"
$AR1 train --config config/train/demo_stage1.yaml --set "model.base_vlm=$DATA/base_vlm" \
  --set "data.train=[$DATA/dataset]" --out "$DATA/stage1"
STAGE1="$DATA/stage1/checkpoints/$(cat "$DATA/stage1/latest")/model"
$AR1 train --config config/train/demo_stage2.yaml --set "model.checkpoint=$STAGE1" \
  --set "data.train=[$DATA/dataset]" --out "$DATA/stage2"
STAGE2="$DATA/stage2/checkpoints/$(cat "$DATA/stage2/latest")/model"
# The expert was still improving after 3 epochs: 4 more at half the learning rate (a second
# cosine schedule), as the committed checkpoint was trained.
$AR1 train --config config/train/demo_stage2.yaml --set "model.checkpoint=$STAGE2" \
  --set "data.train=[$DATA/dataset]" --set optim.lr=5.0e-4 --set optim.warmup_steps=50 \
  --set train.epochs=4 --out "$DATA/stage2b"
FINAL="$DATA/stage2b/checkpoints/$(cat "$DATA/stage2b/latest")/model"

step "5/5 demo/checkpoint and its held-out evaluation (seeds $HELDOUT)"
rm -rf demo/checkpoint.partial && cp -r "$FINAL" demo/checkpoint.partial
rm -rf demo/checkpoint && mv demo/checkpoint.partial demo/checkpoint
$AR1 closed-loop --checkpoint demo/checkpoint --scenarios all --seeds "$HELDOUT" \
  --device cpu --dtype float32 --greedy --out "$DATA/heldout" --overwrite
cp "$DATA/heldout/report.md" demo/EVAL.md
du -sh demo/checkpoint
step "done: demo/checkpoint, demo/EVAL.md"
