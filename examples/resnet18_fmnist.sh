#!/usr/bin/env bash
# A user's classifier through jemkit, end to end: train a torchvision ResNet-18 on Fashion-MNIST in plain
# PyTorch (examples/resnet18_fmnist.py), evaluate it post hoc with `jemkit eval --model torchvision:resnet18`,
# fine-tune it as a JEM with `jemkit finetune` (preset finetune-jempp), and evaluate the fine-tuned model
# against the model as it came (the report's baseline column), then write the report.
#
#   bash examples/resnet18_fmnist.sh OUT [MINUTES] [FINETUNE_STEPS]
#
# Defaults: 10 minutes of training, 750 fine-tuning steps with fmnist-jem-fast's levers (32 chains, log p(x) on
# every 2nd step, bf16 + channels-last: ≈ 1.4 s each for a ResNet-18 on 2 idle CPU cores, 5.4 s without them).
# Environment: DATA (a jemkit dataset spec, default fashion-mnist), SUITES (default
# accuracy,calibration,ood,robustness), EVAL_FLAGS (more `jemkit eval` flags; default: a robustness suite sized
# for a ResNet-18 on a CPU), TRAIN_FLAGS (more flags of resnet18_fmnist.py), FINETUNE_FLAGS (more `jemkit
# finetune` flags).
set -euo pipefail
out=${1:?usage: bash examples/resnet18_fmnist.sh OUT [MINUTES] [FINETUNE_STEPS]}
minutes=${2:-10}
ft_steps=${3:-750}
data=${DATA:-fashion-mnist}
suites=${SUITES:-accuracy,calibration,ood,robustness}
eval_flags=${EVAL_FLAGS:---linf-eps 0,0.02,0.05 --l2-eps 0,1 --robustness n_bare=200 --robustness n_defended=50
  --robustness pgd_steps_bare=10 --robustness pgd_steps_defended=5 --robustness restarts=1
  --robustness defense_gradients=[bpda] --robustness eot=1}
here=$(dirname "$0")
mkdir -p "$out"

stamp() { date +%s; }
t0=$(stamp)
# shellcheck disable=SC2086
python "$here/resnet18_fmnist.py" --out "$out" --minutes "$minutes" --data "$data" ${TRAIN_FLAGS:-} | tee "$out/train.log"
t1=$(stamp)
# The commands the script printed, with the suites and sizes of this comparison.
eval_cmd=$(sed -n 's/^evaluate: //p' "$out/train.log")
finetune_cmd=$(sed -n 's/^fine-tune: //p' "$out/train.log")
# shellcheck disable=SC2086
$eval_cmd --suite "$suites" $eval_flags
t2=$(stamp)
# shellcheck disable=SC2086
$finetune_cmd --overwrite --set train.steps="$ft_steps" --set train.eval_every=250 --set train.checkpoint_every=250 \
    --set train.sample_batch=32 --set train.px_every=2 --set train.bf16=true --set sampler.bf16=true \
    --set train.channels_last=true ${FINETUNE_FLAGS:-}
t3=$(stamp)
# shellcheck disable=SC2086
jemkit eval "$out/finetune" --baseline "$out/finetune/pretrained" --out "$out/finetune/eval" --suite "$suites" $eval_flags
jemkit report "$out/finetune/eval"
t4=$(stamp)
printf 'seconds: train %s, eval %s, finetune %s, eval of both %s\n' $((t1 - t0)) $((t2 - t1)) $((t3 - t2)) $((t4 - t3)) \
    | tee "$out/seconds.txt"
