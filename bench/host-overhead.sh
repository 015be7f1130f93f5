#!/usr/bin/env bash
# Host overhead of a distillation iteration: LADD, PADD (one adversarial stage) and ADD on an untrained
# teacher with widths 8,16 at batch 2 (the smallest batch distill accepts), where the kernels take almost no
# time, so the milliseconds per iteration are what a GPU would still pay on the host. Prints one JSON line per
# method: {"method", "msPerIteration"} (the median of the logged windows after the first).
# Usage: bench/host-overhead.sh [work-dir] [iterations]    (LADDER_BACKEND picks the backend; default torch)
# Runs the checkout it sits in, so an older checkout's copy measures that version on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d)}"
ITERS="${2:-60}"
export LADDER_BACKEND="${LADDER_BACKEND:-torch}"
ladder() { npx tsx src/cli/main.ts "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; exit 1; }; }
mkdir -p "$WORK"

# An untrained tiny world: one training step of each model is enough to have valid folders.
[[ -d "$WORK/ae" ]] || ladder train-ae --data mnist --out "$WORK/ae" --channels 8,8,8 --iterations 1 --batch 2 --limit 64
[[ -d "$WORK/teacher" ]] ||
  ladder train-teacher --ae "$WORK/ae" --out "$WORK/teacher" --channels 8,16 --iterations 1 --batch 2 --limit 64
[[ -d "$WORK/features" ]] ||
  ladder train-features --data fashion-mnist --out "$WORK/features" --channels 8,8 --feature-dim 16 \
    --iterations 1 --batch 2 --limit 64 --test-limit 64
[[ -f "$WORK/synth.safetensors" ]] ||
  ladder synth --teacher "$WORK/teacher" --n 20 --steps 2 --batch 10 --out "$WORK/synth.safetensors"

common=(--teacher "$WORK/teacher" --batch 2 --iterations "$ITERS")
run() {
  local method="$1" out="$WORK/$1"
  shift
  rm -rf "$out"
  ladder distill --method "$method" "${common[@]}" --out "$out" "$@"
  node -e '
    const fs = require("node:fs");
    const [method, logPath] = process.argv.slice(1);
    const ms = fs.readFileSync(logPath, "utf8").trim().split("\n").map((l) => JSON.parse(l))
      .filter((l) => l.msPerStep !== undefined).map((l) => l.msPerStep).slice(1).sort((a, b) => a - b);
    console.log(JSON.stringify({ method, backend: process.env.LADDER_BACKEND, msPerIteration: ms[ms.length >> 1] }));
  ' "$method" "$(find "$out" -name log.jsonl | sort | tail -1)"
}
run ladd --synthetic "$WORK/synth.safetensors"
run padd --schedule 8,4 --synthetic "$WORK/synth.safetensors"
run add --feature-net "$WORK/features" --allow-same-dataset-features
