#!/usr/bin/env bash
# The device measurements in the README's speed section, in one go, on a machine with one CUDA GPU:
#   bash benchmarks/gpu_run.sh [OUT_DIR]
# Needs python3 with torch (CUDA), tqdm, pillow and lightning, and MNIST's four IDX files in
# data/MNIST/raw (gzipped copies in .gpudata/ are unpacked there). Each step tees its table to OUT_DIR.
set -u -o pipefail
OUT=${1:-${OUT:-/tmp/gpu_out}}
mkdir -p "$OUT" data/MNIST/raw
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
for f in .gpudata/*.gz; do [ -e "$f" ] && gunzip -c "$f" > "data/MNIST/raw/$(basename "$f" .gz)"; done
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
lscpu | grep -E "^Model name"
BF16_CPU=$(grep -o -m1 -E "avx512_bf16|amx_bf16" /proc/cpuinfo | head -1)
echo "CPU bf16 instructions: ${BF16_CPU:-none}"
B="python3 benchmarks/bench_speed.py"
T="timeout 150"

# 1. GPU, data resident: the MLP (with the profile) and the CNN.
$T $B --device cuda --epochs 5 --profile --json "$OUT/gpu_mlp.json" --variants bare project "project --amp off" \
  "project --compile" "project --compile, default mode" lightning "lightning bf16-mixed" 2>&1 | tee "$OUT/gpu_mlp.txt"
$T $B --device cuda --model cnn --epochs 3 --variants bare project "project --amp off" 2>&1 | tee "$OUT/gpu_cnn.txt"
# 2. Accuracy: the default run (auto) against --amp off, 5 seeds.
$T python3 benchmarks/eval_amp.py --seeds 0 1 2 3 4 --modes auto off --extra --gpu_id 0 2>&1 | tee "$OUT/gpu_amp.txt"
# 3. This machine's CPU as a 2-core machine: where it has bf16 instructions, what auto chooses and gains.
if [ -n "$BF16_CPU" ]; then
  export CUDA_VISIBLE_DEVICES= OMP_NUM_THREADS=2
  $T taskset -c 0,1 $B --threads 2 --epochs 3 --variants bare project "project --amp off" "project --amp on" \
    lightning "lightning bf16-mixed" 2>&1 | tee "$OUT/cpu2_mlp.txt"
  $T taskset -c 0,1 python3 benchmarks/eval_amp.py --seeds 0 --modes auto off 2>&1 | tee "$OUT/cpu2_amp.txt"
  $T taskset -c 0,1 $B --threads 2 --model cnn --epochs 2 --variants bare project "project --amp off" 2>&1 \
    | tee "$OUT/cpu2_cnn.txt"
fi
