#!/usr/bin/env bash
# The distributed-training checks of the README on a machine with one CUDA GPU and many cores:
#   bash benchmarks/gpu_distributed.sh [OUT_DIR]
# MNIST's four IDX files in data/MNIST/raw (gzipped copies in .gpudata/ are unpacked there).
set -u -o pipefail
OUT=${1:-${OUT:-/tmp/gpu_out}}
mkdir -p "$OUT" data/MNIST/raw
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
for f in .gpudata/*.gz; do [ -e "$f" ] && gunzip -c "$f" > "data/MNIST/raw/$(basename "$f" .gz)"; done
nvidia-smi --query-gpu=name --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
T="timeout 200"
# 1. NCCL with --sync_bn (torch's SyncBatchNorm) and a resume, on the GPU: a short run, stopped and resumed.
$T python3 -m torch.distributed.run --standalone --nproc_per_node=1 train.py --model_fn /tmp/g.pth --n_epochs 2 \
  --lr_schedule constant --sync_bn --checkpoint_every 1 --seed 0 2>&1 | grep -v "^ \|^)" | tee "$OUT/nccl.txt"
$T python3 -m torch.distributed.run --standalone --nproc_per_node=1 train.py --resume /tmp/g.pth.ckpt --n_epochs 3 \
  2>&1 | grep -v "^ \|^)" | tee -a "$OUT/nccl.txt"
# 2. Throughput: 1 and 2 processes on 2 of this machine's cores, then on the GPU, plain and under torchrun.
$T taskset -c 0,1 python3 benchmarks/bench_distributed.py --threads 2 --epochs 3 2>&1 | tee "$OUT/bench_cpu2.txt"
CUDA_VISIBLE_DEVICES=0 $T python3 benchmarks/bench_distributed.py --threads 8 --epochs 3 --gpu 2>&1 \
  | tee "$OUT/bench_gpu.txt"
# 3. The distributed tests, on this machine's torch.
if python3 -c "import pytest" 2>/dev/null; then
  $T python3 -m pytest -q -p no:randomly tests/test_distributed.py 2>&1 | tail -5 | tee "$OUT/tests.txt"
fi
