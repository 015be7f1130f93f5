#!/usr/bin/env bash
# Data-parallel training on this machine: ms per iteration of the shipped MNIST teacher's training and of LADD on
# it, in 1 process and in 2 (`ladder launch --nproc 2`), 1 libtorch thread per process, the same global batch.
# Prints one JSON line per run: {"run", "processes", "batch", "msPerIteration", "collectiveMsPerIteration"}
# (collectives include waiting for the slower rank; the median of the logged windows after the first).
# Usage: bench/data-parallel.sh [work-dir] [iterations] [batch]
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
ITERS="${2:-40}"
BATCH="${3:-32}"
export LADDER_BACKEND=torch LADDER_TORCH_THREADS=1
ladder() { npx tsx src/cli/main.ts "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; exit 1; }; }
mkdir -p "$WORK"
[[ -f "$WORK/synth.safetensors" ]] ||
  ladder synth --teacher models/mnist/teacher --n 400 --steps 8 --out "$WORK/synth.safetensors"

report() {
  node -e '
    const fs = require("node:fs");
    const [run, processes, batch, dir] = process.argv.slice(1);
    const ms = fs.readFileSync(`${dir}/log.jsonl`, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      .filter((l) => l.msPerStep !== undefined).map((l) => l.msPerStep).slice(1).sort((a, b) => a - b);
    const card = JSON.parse(fs.readFileSync(`${dir}/card.json`, "utf8"));
    console.log(JSON.stringify({
      run, processes: Number(processes), batch: Number(batch), msPerIteration: ms[ms.length >> 1],
      collectiveMsPerIteration: card.dataParallel?.collectiveMsPerStep ?? 0,
    }));
  ' "$@"
}

for processes in 1 2; do
  launch=()
  [[ $processes -gt 1 ]] && launch=(launch --nproc "$processes" --)
  out="$WORK/teacher-$processes"
  rm -rf "$out"
  ladder "${launch[@]}" train-teacher --ae models/mnist/autoencoder --out "$out" --batch "$BATCH" \
    --iterations "$ITERS" --limit 2000
  report teacher "$processes" "$BATCH" "$out"
  out="$WORK/ladd-$processes"
  rm -rf "$out"
  ladder "${launch[@]}" distill --method ladd --teacher models/mnist/teacher --synthetic "$WORK/synth.safetensors" \
    --out "$out" --batch "$BATCH" --iterations "$ITERS"
  report ladd "$processes" "$BATCH" "$out"
done
