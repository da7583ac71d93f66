#!/usr/bin/env bash
# Energy-bounded OOD fine-tuning (Liu et al. 2020, §3.2) of a Fashion-MNIST classifier with an outlier set from
# a source no OOD test set uses: random crops of scikit-learn's two sample photographs (examples/natural_patches.py).
# Trains the classifier (preset fmnist-baseline), fine-tunes it with train.objective=energy_oe and margins from
# its own energies (oe.margins=auto) and evaluates it against the model as it came (FPR95 per OOD set and score).
#
#   bash examples/energy_oe_fmnist.sh OUT [FINETUNE_STEPS]
#
# Margins (oe.margins=auto, measured by the trainer at step 0 and written to OUT/oe/events.log): m_in = the
# median energy of the classifier's first 5,000 training images, m_out = the median energy of the first 5,000
# outliers, moved apart to at least MARGIN_GAP (default 2) around their midpoint when they are closer.
# Environment: DATA (default fashion-mnist), PRESET (default fmnist-baseline), TRAIN_FLAGS (more `jemkit train`
# flags), FINETUNE_FLAGS (more `jemkit finetune` flags), EVAL_FLAGS (more `jemkit eval` flags), N_OUTLIERS
# (default 20000).
set -euo pipefail
out=${1:?usage: bash examples/energy_oe_fmnist.sh OUT [FINETUNE_STEPS]}
steps=${2:-2000}
data=${DATA:-fashion-mnist}
here=$(dirname "$0")
mkdir -p "$out"

# shellcheck disable=SC2086
[ -f "$out/base/config.yaml" ] || jemkit train --preset "${PRESET:-fmnist-baseline}" --set data.name="$data" \
    --out "$out/base" ${TRAIN_FLAGS:-}
shape=$(python -c "from jemkit.data import load_dataset; print('x'.join(map(str, load_dataset('$data').shape)))")
python "$here/natural_patches.py" --out "$out/outliers.npz" --n "${N_OUTLIERS:-20000}" --shape "$shape"
# shellcheck disable=SC2086
jemkit finetune "$out/base" --out "$out/oe" --overwrite --set train.objective=energy_oe \
    --set data.outliers=npz:"$out/outliers.npz" --set oe.margins=auto --set oe.margin_gap="${MARGIN_GAP:-2}" \
    --set train.steps="$steps" ${FINETUNE_FLAGS:-}
echo "margins: $(grep -o 'm_in=[^,]*, m_out=[^ ]*' "$out/oe/events.log" | head -1)"
# shellcheck disable=SC2086
jemkit eval "$out/oe" --baseline "$out/oe/pretrained" --out "$out/oe/eval" --suite accuracy,calibration,ood ${EVAL_FLAGS:-}
