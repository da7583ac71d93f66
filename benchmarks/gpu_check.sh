#!/usr/bin/env bash
# One GPU check, prepared for the first session lent a device (issue 16). In about 8 minutes on a GPU:
#   1. the CUDA tests (the ones skipped on CPU machines: CUDA graphs; every sampler contract on cuda);
#   2. `jemkit bench` on WRN-28-10: the textbook fp32 loop vs jemkit fp32, bf16 + channels-last, and
#      CUDA graphs + bf16 + channels-last;
#   3. `cifar10-jempp` trained on Fashion-MNIST padded to 3x32x32 for a fixed number of steps: images/s
#      after warm-up and the projected time of a CIFAR-10-sized epoch (50,000 images) against the JEM
#      paper's ~30 minutes per epoch.
# Everything is written to OUT (default gpu-check/): gpu_check.log, bench.json, throughput.json.
#
# usage: benchmarks/gpu_check.sh [--quick] [--out DIR] [--data-root DIR] [--python PY]
#   --quick       tiny sizes, for a CPU dry run (every CI-less session runs this before it has a GPU)
#   --data-root   folder holding the four Fashion-MNIST IDX files (default: jemkit's own search)
# On the device machine (no network): carry the IDX files in an ignored folder of the checkout, e.g.
#   mkdir -p .data && cp /usr/share/datasets/fashion-mnist/* .data/ && echo /.data/ >> .git/info/exclude
# and run `bash benchmarks/gpu_check.sh --out $OUT --data-root .data` with carry [".data"].
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0; OUT=gpu-check; ROOT=""; PY=${PYTHON:-python3}
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT=$2; shift ;;
    --data-root) ROOT=$2; shift ;;
    --python) PY=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec > >(tee "$OUT/gpu_check.log") 2>&1
start=$(date +%s)
stamp() { echo "== $1 ($(( $(date +%s) - start )) s)"; }

stamp "device"
"$PY" -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(),
      '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"

stamp "1. CUDA tests"
TESTS="tests/test_fast_sampling.py tests/test_samplers.py"
[ "$QUICK" = 1 ] && TESTS="tests/test_fast_sampling.py"
"$PY" -m pytest -q -rs -p no:cacheprovider $TESTS || echo "!! CUDA tests failed (see above)"

stamp "2. jemkit bench"
if [ "$QUICK" = 1 ]; then
  "$PY" -m jemkit bench --quick --reps 1 --quiet --out "$OUT/bench.json" || echo "!! bench failed"
else
  "$PY" -m jemkit bench --nets wrn-28-10 --variants fp32,bf16+cl,graph+bf16+cl --reps 3 --quiet \
    --out "$OUT/bench.json" || echo "!! bench failed"
fi

stamp "3. cifar10-jempp on 3x32x32 padded Fashion-MNIST"
SETS=(--set data.name=fashion-mnist --set data.shape=3x32x32 --set train.tensorboard=false
      --set train.eval_every=1000000 --set train.sample_every=1000000)
[ -n "$ROOT" ] && SETS+=(--set "data.root=$ROOT")
if [ "$QUICK" = 1 ]; then
  SETS+=(--set train.steps=6 --set train.log_every=2 --set model.depth=10 --set model.widen=1
         --set data.batch_size=8 --set buffer.size=64 --set train.channels_last=false)
else
  SETS+=(--set train.steps=600 --set train.log_every=50)
fi
"$PY" -m jemkit train --preset cifar10-jempp --out "$OUT/run" --overwrite --quiet "${SETS[@]}" \
  || echo "!! training failed"
"$PY" - "$OUT" <<'PY' || echo "!! no throughput figures"
import csv, json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [r for r in csv.DictReader(open(out / "run" / "metrics.csv")) if r.get("seconds")]
cfg = __import__("yaml").safe_load(open(out / "run" / "config.yaml"))
batch = cfg["data"]["batch_size"]
first, last = rows[0], rows[-1]  # after the first logged interval: compile/graph capture and warm-up excluded
steps = int(last["step"]) - int(first["step"])
seconds = float(last["seconds"]) - float(first["seconds"])
ips = steps * batch / seconds
result = {"steps_timed": steps, "seconds": round(seconds, 2), "batch": batch, "images_per_s": round(ips, 1),
          "projected_minutes_per_50k_epoch": round(50000 / ips / 60, 2), "jem_paper_minutes_per_epoch": 30,
          "last_loss": float(last["loss"])}
(out / "throughput.json").write_text(json.dumps(result, indent=1))
print(json.dumps(result))
PY
stamp "done"
