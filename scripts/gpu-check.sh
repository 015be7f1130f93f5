#!/usr/bin/env bash
# The one prepared run for a GPU machine (a CUDA PyTorch, maybe no Node, no network), under 10 minutes:
#   1. builds the torch addon against that PyTorch's libtorch;
#   2. runs the torch backend tests on CUDA;
#   3. the bench U-Net training step, ladder (torch backend, CUDA) against the same model in PyTorch CUDA eager,
#      at batch 32 and 128, with ladder's profile (native calls, reads, ms inside and outside native calls);
#   4. ms per iteration of LADD, PADD (one adversarial stage) and ADD at batch 128 on the shipped teacher.
# Prints one JSON summary on stdout (logs and every JSON line go to $OUT, default runs/gpu-check).
# Without Node >= 20 and node_modules it runs from gpu-kit/ (made here by scripts/gpu-kit.sh; carry it along).
# Usage: scripts/gpu-check.sh      (LIBTORCH=/path overrides the torch of python3; DEVICE=cpu rehearses it)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/runs/gpu-check}"
DEVICE="${DEVICE:-cuda}"
mkdir -p "$OUT"
log() { echo "gpu-check: $*" >&2; }
began=$SECONDS
# Each phase gets at most what is left of 9 minutes (the device time of a session is short).
left() { local l=$((540 - (SECONDS - began))); ((l > 10)) && echo "$l" || echo 10; }
cap() { local want="$1" l; l="$(left)"; ((want < l)) && echo "$want" || echo "$l"; }

# --- Python with torch, its libtorch, the machine.
for PYTHON in ${PYTHON:-} python3 /usr/bin/python3; do "$PYTHON" -c 'import torch' 2>/dev/null && break; done
"$PYTHON" -c 'import torch' 2>/dev/null || { log "no python3 with torch"; exit 1; }
LIBTORCH="${LIBTORCH:-$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')}"
"$PYTHON" - >"$OUT/machine.json" <<'PY'
import json, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu,
                  "cxx11Abi": int(torch._C._GLIBCXX_USE_CXX11_ABI)}))
PY
log "machine: $(cat "$OUT/machine.json"); libtorch at $LIBTORCH"

# --- Node: this machine's, else the kit's.
if command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] < 20)'; then
  NODE="$(command -v node)"
elif [[ -f gpu-kit/node.xz ]]; then
  mkdir -p gpu-kit/bin && xz -dc gpu-kit/node.xz >gpu-kit/bin/node && chmod +x gpu-kit/bin/node
  NODE="$ROOT/gpu-kit/bin/node"
else
  log "no Node >= 20 here and no gpu-kit/: run scripts/gpu-kit.sh on a machine with Node and carry gpu-kit/"
  exit 1
fi
if [[ -x node_modules/.bin/tsx ]]; then
  LADDER=("$NODE" --import tsx src/cli/main.ts)
  TESTS=(src/engine/torch/*.test.ts)
  TEST_RUN=("$NODE" --import tsx)
else
  [[ -d gpu-kit/js ]] || { log "no node_modules and no gpu-kit/js: run scripts/gpu-kit.sh"; exit 1; }
  LADDER=("$NODE" gpu-kit/js/cli/main.js)
  TESTS=(gpu-kit/js/engine/torch/*.test.js)
  TEST_RUN=("$NODE")
fi

# --- 1. The addon: node-gyp through npm when there is one, else one compiler call per source file.
ADDON="$ROOT/native/build/Release/ladder_torch.node"
if command -v npm >/dev/null && [[ -d node_modules ]]; then
  LIBTORCH="$LIBTORCH" "$NODE" scripts/build-native.mjs >"$OUT/build.log" 2>&1
else
  node_include="$(dirname "$(dirname "$(readlink -f "$NODE")")")/include/node"
  if [[ ! -f "$node_include/node_api.h" ]]; then
    mkdir -p gpu-kit/node-headers && tar -C gpu-kit/node-headers -xJf gpu-kit/node-include.tar.xz
    node_include="$ROOT/gpu-kit/node-headers/include/node"
  fi
  abi="$("$PYTHON" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
  std=c++17
  grep -q 'C++20' "$LIBTORCH/include/ATen/ATen.h" 2>/dev/null && std=c++20
  cuda_libs=()
  [[ -f "$LIBTORCH/lib/libtorch_cuda.so" ]] && cuda_libs=(-ltorch_cuda -lc10_cuda)
  mkdir -p native/build/obj native/build/Release
  flags=(-std="$std" -O2 -fPIC -fexceptions -frtti -DNAPI_VERSION=8 -D_GLIBCXX_USE_CXX11_ABI="$abi"
    -I"$node_include" -I"$LIBTORCH/include" -I"$LIBTORCH/include/torch/csrc/api/include" -Wno-unused-parameter)
  {
    printf '%s\n' native/src/*.cc | xargs -P "$(nproc)" -I{} sh -c \
      "${CXX:-c++} ${flags[*]} -c {} -o native/build/obj/\$(basename {} .cc).o" &&
      "${CXX:-c++}" -shared -o "$ADDON" native/build/obj/*.o -L"$LIBTORCH/lib" -Wl,-rpath,"$LIBTORCH/lib" \
        -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 "${cuda_libs[@]}"
  } >"$OUT/build.log" 2>&1
fi
[[ -f "$ADDON" ]] || { log "the addon did not build:"; tail -30 "$OUT/build.log" >&2; exit 1; }
export LADDER_TORCH_ADDON="$ADDON" LADDER_TORCH_DEVICE="$DEVICE" LADDER_BACKEND=torch
log "addon built ($((SECONDS - began)) s)"

# --- 2. The torch backend tests on the device (the cpu backend is the reference).
timeout "$(cap 240)" "${TEST_RUN[@]}" --test --test-concurrency=1 "${TESTS[@]}" >"$OUT/tests.log" 2>&1
tests_rc=$?
tests_line="$(grep -E '^# (pass|fail)' "$OUT/tests.log" | tr '\n' ' ')"
log "tests: rc $tests_rc, $tests_line($((SECONDS - began)) s)"

# --- 3. The bench U-Net step: ladder against PyTorch eager, same device, batch, widths.
bench=()
for batch in 32 128; do
  timeout "$(cap 90)" "${LADDER[@]}" bench --batch "$batch" --iterations 10 --profile >"$OUT/bench-ladder-$batch.json" 2>>"$OUT/bench.log"
  timeout "$(cap 90)" "$PYTHON" bench/unet-pytorch.py --device "$DEVICE" --batch "$batch" --steps 10 \
    >"$OUT/bench-pytorch-$batch.json" 2>>"$OUT/bench.log"
  bench+=("$OUT/bench-ladder-$batch.json" "$OUT/bench-pytorch-$batch.json")
done
log "bench done ($((SECONDS - began)) s)"

# --- 4. One distillation iteration of each method at batch 128 on the shipped teacher, profiled.
synth=(--synthetic "$OUT/synthetic.safetensors" --synth-n 256 --synth-steps 4)
common=(--teacher models/mnist/teacher --batch 128 --profile 10 --out "$OUT/distill")
timeout "$(cap 120)" "${LADDER[@]}" distill --method ladd "${common[@]}" "${synth[@]}" >"$OUT/ladd.json" 2>>"$OUT/distill.log"
timeout "$(cap 90)" "${LADDER[@]}" distill --method padd --schedule 4,2 "${common[@]}" "${synth[@]}" \
  >"$OUT/padd.json" 2>>"$OUT/distill.log"
timeout "$(cap 90)" "${LADDER[@]}" distill --method add --feature-net models/fashion-mnist/features --limit 2048 "${common[@]}" \
  >"$OUT/add.json" 2>>"$OUT/distill.log"
log "distillation iterations done ($((SECONDS - began)) s)"

# --- The summary.
"$NODE" - "$OUT" "$tests_rc" "$tests_line" "$((SECONDS - began))" <<'JS' | tee "$OUT/summary.json"
const fs = require('node:fs');
const [out, testsRc, testsLine, seconds] = process.argv.slice(2);
const read = (f) => {
  try {
    const lines = fs.readFileSync(`${out}/${f}`, 'utf8').trim().split('\n');
    return JSON.parse(lines[lines.length - 1]);
  } catch {
    return null;
  }
};
const bench = [32, 128].map((batch) => {
  const ladder = read(`bench-ladder-${batch}.json`);
  const pytorch = read(`bench-pytorch-${batch}.json`);
  const ratio = ladder && pytorch ? Math.round((ladder.msPerStepMedian / pytorch.msPerStepMedian) * 100) / 100 : null;
  return { batch, ladderMs: ladder?.msPerStepMedian ?? null, pytorchMs: pytorch?.msPerStepMedian ?? null, ratio,
    ladderProfile: ladder?.profile ?? null };
});
const distill = Object.fromEntries(['ladd', 'padd', 'add'].map((m) => [m, read(`${m}.json`)?.profile ?? null]));
console.log(JSON.stringify({ machine: read('machine.json'), tests: { rc: +testsRc, summary: testsLine.trim() },
  bench, distillBatch128: distill, seconds: +seconds }));
JS
