#!/usr/bin/env bash
# Builds the torch addon against a CUDA libtorch and checks the torch backend on the GPU in one go:
# the backend tests on device 'cuda', then the U-Net-like training benchmark (TF.js torch backend vs
# plain PyTorch) on that GPU.
# Usage: scripts/gpu-check.sh [/path/to/libtorch]   (default: the torch package of python3)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
LIBTORCH="${1:-${LIBTORCH:-}}"
if [[ -z "$LIBTORCH" ]]; then
  LIBTORCH="$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)" || {
    echo "gpu-check: no libtorch given and '$PYTHON' has no torch; pass /path/to/libtorch" >&2
    exit 1
  }
fi
export LIBTORCH
echo "gpu-check: libtorch at $LIBTORCH"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "gpu-check: nvidia-smi not found"

# 1. Build (fails loudly: LIBTORCH is explicit here).
node scripts/build-native.mjs

# 2. Backend tests on the GPU (the cpu backend is the reference; TF32 stays off by default).
LADDER_TORCH_DEVICE=cuda node --import tsx --test --test-concurrency=1 src/engine/torch/*.test.ts

# 3. Benchmarks: the TF.js torch backend on cuda, then the same net in PyTorch on cuda.
STEPS="${STEPS:-20}"
npx tsx bench/torch-backend.ts --backends torch --device cuda --steps "$STEPS"
"$PYTHON" bench/torch-vs-pytorch.py --device cuda --steps "$STEPS" --channels-last
"$PYTHON" bench/torch-vs-pytorch.py --device cuda --steps "$STEPS"
