#!/usr/bin/env bash
# The CPU bar of the torch backend: `ladder --backend torch bench` against the same U-Net in PyTorch eager
# (bench/unet-pytorch.py), at the same batch and threads, back to back; each pair is run ROUNDS times. Prints one
# JSON line per thread count: the medians of the runs' median step times and their ratio, and the fastest steps
# and their ratio (on a shared machine, the least disturbed measure).
# Usage: bench/cpu-ratio.sh [threads...]   (default: 1 2; ROUNDS=3, STEPS=5, BATCH=32)
set -euo pipefail
cd "$(dirname "$0")/.."
# The first python with torch: $PYTHON, python3, or Debian's (a pyenv python3 may shadow it).
for PYTHON in ${PYTHON:-} python3 /usr/bin/python3; do "$PYTHON" -c 'import torch' 2>/dev/null && break; done
ROUNDS="${ROUNDS:-3}"
STEPS="${STEPS:-5}"
BATCH="${BATCH:-32}"
"$PYTHON" -c 'import torch' 2>/dev/null || { echo "cpu-ratio: no python3 with torch (apt-get install python3-torch)" >&2; exit 1; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
fields() { node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { const j = JSON.parse(s); console.log(j.msPerStepMedian, j.msPerStepMin); })'; }
THREADS=("$@")
[[ ${#THREADS[@]} -gt 0 ]] || THREADS=(1 2)
for threads in "${THREADS[@]}"; do
  ladder=() pytorch=() ladder_min=() pytorch_min=()
  for _ in $(seq "$ROUNDS"); do
    read -r med min < <(LADDER_TORCH_THREADS="$threads" npx tsx src/cli/main.ts --backend torch bench --batch "$BATCH" --iterations "$STEPS" | fields)
    ladder+=("$med") ladder_min+=("$min")
    read -r med min < <("$PYTHON" bench/unet-pytorch.py --threads "$threads" --batch "$BATCH" --steps "$STEPS" | fields)
    pytorch+=("$med") pytorch_min+=("$min")
  done
  l="$(printf '%s\n' "${ladder[@]}" | median)"
  p="$(printf '%s\n' "${pytorch[@]}" | median)"
  lm="$(printf '%s\n' "${ladder_min[@]}" | sort -n | head -1)"
  pm="$(printf '%s\n' "${pytorch_min[@]}" | sort -n | head -1)"
  node -e 'const [t, l, p, lm, pm, b] = process.argv.slice(1).map(Number); const r = (x) => Math.round(x * 100) / 100; console.log(JSON.stringify({ benchmark: "cpu-ratio", batch: b, threads: t, ladderMs: l, pytorchMs: p, ratio: r(l / p), ladderMinMs: lm, pytorchMinMs: pm, ratioMin: r(lm / pm) }))' "$threads" "$l" "$p" "$lm" "$pm" "$BATCH"
done
