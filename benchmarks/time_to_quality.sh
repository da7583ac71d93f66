#!/usr/bin/env bash
# Time to quality on Fashion-MNIST (issue 16): the classifier baseline against a fast JEM recipe, seeds
# interleaved (baseline seed 0, JEM seed 0, baseline seed 1, ...), one run at a time with the same threads,
# then `jemkit compare --quality`: per recipe the wall time until an evaluation first shows test accuracy
# >= the baseline's final - 1 point, ECE <= the baseline's final ECE and >= 90% class agreement of
# class-conditional fresh chains (the baseline: to its own final accuracy - 1 point); medians over seeds.
# Both recipes evaluate every EVAL_EVERY steps, so neither is timed more coarsely than the other.
#
# usage: benchmarks/time_to_quality.sh OUT [SEEDS=3]
#   env: JEM_PRESET (fmnist-jem-fast), BASE_PRESET (fmnist-baseline), THREADS (2), EVAL_EVERY (500),
#        JEM_FLAGS / BASE_FLAGS (extra `--set` flags), QUICK=1 (a few steps each: a dry run of the script),
#        BF16_BASELINE=1 (a third recipe, "base-bf16": the baseline with the whole step in bf16 + channels-last,
#        the precision lever the JEM recipe uses, so its share of the gain can be read off)
# Run it on an otherwise idle machine: the comparison is of wall times.
set -euo pipefail
OUT=${1:?usage: benchmarks/time_to_quality.sh OUT [SEEDS]}; SEEDS=${2:-3}
JEM_PRESET=${JEM_PRESET:-fmnist-jem-fast}; BASE_PRESET=${BASE_PRESET:-fmnist-baseline}
THREADS=${THREADS:-2}; EVAL_EVERY=${EVAL_EVERY:-500}
QUICK_FLAGS=()
[ "${QUICK:-0}" = 1 ] && QUICK_FLAGS=(--set train.steps=20 --set optim.warmup=0 --set optim.decay_at=[] --set train.log_every=10)
[ "${QUICK:-0}" = 1 ] && EVAL_EVERY=10
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
runs=(); labels=()
for seed in $(seq 0 $((SEEDS - 1))); do
  recipes="base jem"; [ "${BF16_BASELINE:-0}" = 1 ] && recipes="base jem base-bf16"
  for which in $recipes; do
    case $which in
      base) preset=$BASE_PRESET; flags=${BASE_FLAGS:-} ;;
      jem) preset=$JEM_PRESET; flags=${JEM_FLAGS:-} ;;
      base-bf16) preset=$BASE_PRESET; flags="${BASE_FLAGS:-} --set train.bf16=true --set train.channels_last=true --set train.eval_samples=10" ;;
    esac
    dir="$OUT/${which}_s$seed"
    echo "== $which seed $seed: jemkit train --preset $preset ($(date +%T))"
    # shellcheck disable=SC2086  # the extra flags are words
    jemkit train --preset "$preset" --out "$dir" --overwrite --quiet --set train.seed=$seed \
      --set train.eval_every=$EVAL_EVERY "${QUICK_FLAGS[@]}" $flags
    runs+=("$dir"); labels+=("$which")
  done
done
# the baseline's runs first: the first label is the reference
order=(); order_labels=()
for i in "${!runs[@]}"; do [ "${labels[$i]}" = base ] && order+=("${runs[$i]}") && order_labels+=(base); done
for other in jem base-bf16; do
  for i in "${!runs[@]}"; do [ "${labels[$i]}" = $other ] && order+=("${runs[$i]}") && order_labels+=($other); done
done
jemkit compare "${order[@]}" --labels "$(IFS=,; echo "${order_labels[*]}")" --quality --out "$OUT/compare" | tee "$OUT/time_to_quality.txt"
