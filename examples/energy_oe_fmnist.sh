#!/usr/bin/env bash
# Energy-bounded OOD fine-tuning (Liu et al. 2020, §3.2) of a Fashion-MNIST classifier with an outlier set from
# a source no OOD test set uses: random crops of scikit-learn's two sample photographs (examples/natural_patches.py).
# Trains the classifier (preset fmnist-baseline), sets the margins from its own energies, fine-tunes it with
# train.objective=energy_oe and evaluates it against the model as it came (FPR95 per OOD set and score).
#
#   bash examples/energy_oe_fmnist.sh OUT [FINETUNE_STEPS]
#
# Margins: m_in = the median energy of the classifier's training images, m_out = the median energy of the
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
read -r m_in m_out < <(python - "$out/base" "$out/outliers.npz" "$data" "${MARGIN_GAP:-2}" <<'EOF'
import sys

import torch

import jemkit
from jemkit.data import load_dataset, load_ood_set

run, outliers, name, gap = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
model, data = jemkit.load(run), load_dataset(name)
with torch.no_grad():
    e_in = -torch.logsumexp(model(data.x_train[:5000]), 1).median().item()
    e_out = -torch.logsumexp(model(load_ood_set(f"npz:{outliers}", like=data)[:5000]), 1).median().item()
mid, half = (e_in + e_out) / 2, max((e_out - e_in) / 2, gap / 2)
print(f"{mid - half:.2f} {mid + half:.2f}")
print(f"median energy: training images {e_in:.2f}, outliers {e_out:.2f}", file=sys.stderr)
EOF
)
echo "margins: oe.m_in=$m_in oe.m_out=$m_out"
# shellcheck disable=SC2086
jemkit finetune "$out/base" --out "$out/oe" --overwrite --set train.objective=energy_oe \
    --set data.outliers=npz:"$out/outliers.npz" --set oe.m_in="$m_in" --set oe.m_out="$m_out" \
    --set train.steps="$steps" ${FINETUNE_FLAGS:-}
# shellcheck disable=SC2086
jemkit eval "$out/oe" --baseline "$out/oe/pretrained" --out "$out/oe/eval" --suite accuracy,calibration,ood ${EVAL_FLAGS:-}
