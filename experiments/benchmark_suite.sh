#!/usr/bin/env bash
# Regenerates the speed table of experiments/docs/speed.md: lgae's combined step back to back with
# a PyTorch implementation of the same step (PEER: a script taking a batch size
# and a step count, printing ms/step), batch-size scaling, the three configs,
# and 1/2/4 forced host devices. Run on an otherwise idle machine.
#   PEER=torch_step.py TORCH_PY=/tmp/torch-venv/bin/python bash experiments/benchmark_suite.sh > bench.jsonl
set -u
cd "$(dirname "$0")/.."
TORCH_PY=${TORCH_PY:-python3}
PEER=${PEER:?set PEER to the PyTorch step script to compare with}
PY=${PYTHON:-python}  # the interpreter lgae is installed in
bench() { "$PY" -m experiments.benchmark "$@" 2>/dev/null | tail -1; }
torch_step() { echo "{\"torch\": \"$($TORCH_PY $PEER "$1" 20 2>/dev/null | tail -1)\", \"batch_size\": $1}"; }

for round in 1 2 3; do          # back to back, three times
  torch_step 128
  bench --config=configs/mnist.py:paper
done
# Ablation: without lgae's malloc settings (lgae/host_memory.py).
LGAE_TUNE_MALLOC=0 bench --config=configs/mnist.py:paper --input_batches=0
for b in 32 64 256 512; do
  torch_step "$b"
  bench --config=configs/mnist.py:paper --config.batch_size="$b" --input_batches=0
done
for n in 1 2 4; do
  XLA_FLAGS=--xla_force_host_platform_device_count=$n bench --config=configs/mnist.py:paper --input_batches=0
done
bench --config=configs/chairs.py --num_steps=5 --repeats=2 --input_batches=0
bench --config=configs/celeba.py --num_steps=5 --repeats=2 --input_batches=0
