#!/usr/bin/env bash
# Semi-supervised learning on Fashion-MNIST (issue 14): the JEM recipe against the classifier baseline with
# N labels per class (data.labels_per_class; the rest of the training set unlabeled, used by the JEM's
# log p(x) term only, never by the baseline), each pair with the same labelled subset (data.split_seed =
# the seed) and the same training seed, then `jemkit compare` per label count: each recipe's best and final
# test accuracy, mean ± std over seeds, and the JEM's difference from the baseline.
# "Best" is the best of the evaluations every EVAL_EVERY steps ("each model at its own best number of steps"):
# the baseline fits its few labels within 2,000 steps and then stays flat, the JEM's test accuracy still rises
# at 8,000 (its unlabeled log p(x) term keeps teaching it), hence the default 4,000 vs 16,000 steps.
# The JEM is fmnist-jem-ssl (width 32, negative augmentation), the baseline fmnist-baseline at the same width
# (BASE_FLAGS). The JEM's chains start from one Gaussian fitted to all training images (buffer.init=gaussian,
# labels unused): class Gaussians would be fitted to the N labelled images per class only.
#
# usage: benchmarks/semi_supervised.sh OUT [SEEDS=3]
#   env: LABELS ("10 100"), BASE_STEPS (4000), JEM_STEPS (16000), EVAL_EVERY (250), JEM_PRESET (fmnist-jem-ssl),
#        JEM_INIT (gaussian; or class_gaussian, uniform),
#        BASE_PRESET (fmnist-baseline), BASE_FLAGS ("--set model.width=32": the JEM's backbone),
#        JEM_FLAGS (extra `--set` flags), QUICK=1 (a few steps each: a dry run of the script)
# Runs one training at a time; finished runs (a metrics.csv that reached their steps) are kept, so it resumes.
set -euo pipefail
OUT=${1:?usage: benchmarks/semi_supervised.sh OUT [SEEDS]}; SEEDS=${2:-3}
LABELS=${LABELS:-10 100}; BASE_STEPS=${BASE_STEPS:-4000}; JEM_STEPS=${JEM_STEPS:-16000}; EVAL_EVERY=${EVAL_EVERY:-250}
JEM_PRESET=${JEM_PRESET:-fmnist-jem-ssl}; BASE_PRESET=${BASE_PRESET:-fmnist-baseline}; JEM_INIT=${JEM_INIT:-gaussian}
QUICK_FLAGS=()
if [ "${QUICK:-0}" = 1 ]; then
  BASE_STEPS=20; JEM_STEPS=20; EVAL_EVERY=10
  QUICK_FLAGS=(--set optim.warmup=0 --set optim.decay_at=[] --set train.log_every=10 --set train.eval_samples=0)
fi
mkdir -p "$OUT"
for n in $LABELS; do
  for seed in $(seq 0 $((SEEDS - 1))); do
    for which in base jem; do
      case $which in
        base) preset=$BASE_PRESET; flags=${BASE_FLAGS---set model.width=32}; STEPS=$BASE_STEPS ;;
        jem) preset=$JEM_PRESET; flags="--set buffer.init=$JEM_INIT ${JEM_FLAGS:-}"; STEPS=$JEM_STEPS ;;
      esac
      dir="$OUT/n${n}/${which}_s$seed"
      if [ -f "$dir/metrics.csv" ] && grep -q "^$STEPS," "$dir/metrics.csv"; then continue; fi
      echo "== $n labels/class, $which seed $seed: jemkit train --preset $preset ($(date +%T))"
      # shellcheck disable=SC2086  # the extra flags are words
      jemkit train --preset "$preset" --out "$dir" --overwrite --quiet --set data.labels_per_class="$n" \
        --set data.split_seed="$seed" --set train.seed="$seed" --set train.steps="$STEPS" \
        --set train.eval_every="$EVAL_EVERY" --set train.sample_every="$STEPS" --set train.checkpoint_every="$STEPS" \
        "${QUICK_FLAGS[@]}" $flags
    done
  done
done
for n in $LABELS; do
  dirs=(); labels=()
  for which in base jem; do
    for seed in $(seq 0 $((SEEDS - 1))); do dirs+=("$OUT/n${n}/${which}_s$seed"); labels+=("$which"); done
  done
  echo "== $n labels per class"
  jemkit compare "${dirs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" --out "$OUT/n${n}/compare" | tee "$OUT/n${n}/semi_supervised.txt"
done
