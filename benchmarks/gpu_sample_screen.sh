#!/usr/bin/env bash
# Screens uniform-init JEM recipes for samples from noise on one GPU: seven `fmnist-jem` variants train at once for
# SECONDS of wall time each (SIGTERM then saves a checkpoint), then fresh chains from U(-1, 1) of 20, 100, 300 and
# 1,000 steps are drawn from each (benchmarks/fresh_chain_snapshots.py). OUT gets one VARIANT.tgz per variant
# (model without buffer, metrics, config, snapshots: ~7 MB) to score elsewhere (Inception FID on a CPU:
# README, samples row). Run on 2026-12-04 on an H200 with SECONDS=360 (396 s in all).
#
# usage: benchmarks/gpu_sample_screen.sh OUT SECONDS [--data-root DIR] [--quick]
#   --quick: toy sizes, for a CPU dry run
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$1; SECONDS_EACH=$2; shift 2; QUICK=0; ROOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --data-root) ROOT=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT/w" "$OUT/pack"
COMMON=(--set train.tensorboard=false --set train.checkpoint_every=500 --set train.sample_every=1500 --set train.eval_every=1500)
[ -n "$ROOT" ] && COMMON+=(--set "data.root=$ROOT")
[ "$QUICK" = 1 ] && COMMON+=(--set train.steps=4 --set train.checkpoint_every=2 --set train.eval_every=2 --set buffer.size=128)
declare -A V=(
  [base]=""                                                                  # fmnist-jem as it is
  [paper]="--set optim.lr=1e-4 --set train.energy_l2=0 --set optim.decay_at=[]"  # the JEM paper's optimizer, no energy penalty
  [sn]="--set model.spectral_norm=true"
  [pcd60]="--set sampler.steps=60 --set train.steps=2500"                    # 3x the chain, 1/3 the updates
  [sr100]="--set buffer.reinit=1.0 --set sampler.steps=100 --set train.steps=1500 --set train.energy_l2=0.01 --set optim.lr=3e-4"  # short-run chains from noise
  [sin]="--set train.sample_input_noise=0.03"
  [ema]="--set train.ema=0.999"
)
for k in "${!V[@]}"; do
  extra=${V[$k]}; [ "$QUICK" = 1 ] && extra=$(echo "$extra" | sed 's/--set train.steps=[0-9]*//')
  timeout "$SECONDS_EACH" python3 -m jemkit train --preset fmnist-jem --out "$OUT/w/$k" --overwrite --quiet \
    "${COMMON[@]}" $extra > "$OUT/w/$k.log" 2>&1 &
done
wait
N=1000; L=20,100,300,1000; [ "$QUICK" = 1 ] && N=16 && L=2,4
for k in "${!V[@]}"; do
  python3 benchmarks/fresh_chain_snapshots.py "$OUT/w/$k" "$OUT/pack/$k" $N $L > /dev/null 2> "$OUT/w/$k.snap.err" &
done
wait
for k in "${!V[@]}"; do
  echo "== $k: $(tail -n 1 "$OUT/w/$k.log")"
  echo "   $(cat "$OUT/pack/$k/snap.json" 2>/dev/null || tail -n 3 "$OUT/w/$k.snap.err")"
  cp "$OUT/w/$k"/metrics.csv "$OUT/w/$k"/config.yaml "$OUT/w/$k.log" "$OUT/pack/$k"/ 2>/dev/null
  tar -C "$OUT/pack" -czf "$OUT/$k.tgz" "$k"
done
rm -rf "$OUT/w" "$OUT/pack"
ls -la "$OUT"
