// ort_run.js - runs an ONNX model exported by `mpicnn export` with ONNX
// Runtime (npm's onnxruntime-node) on the images of an uncompressed IDX
// file, and prints one line per image: its logits, comma-separated, with
// 9 significant digits (as `mpicnn predict --logits`).
//   node tests/ort_run.js MODEL.onnx IMAGES.idx [--meta]
// The package is loaded from $MPICNN_ORT_DIR/node_modules (default
// ${XDG_CACHE_HOME:-$HOME/.cache}/mpicnn/onnxruntime). --meta prints the
// model's metadata (producer, class names) to stderr first.
'use strict';
const fs = require('fs');
const path = require('path');
const os = require('os');

function ortDir() {
    if (process.env.MPICNN_ORT_DIR) return process.env.MPICNN_ORT_DIR;
    const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
    return path.join(cache, 'mpicnn', 'onnxruntime');
}

// IDX images: magic 0x00000803 (uint8, 3 dims) N H W, or 0x00000804 N C H W.
function readIdx(file) {
    const b = fs.readFileSync(file);
    const nd = b[3];
    if (b[0] !== 0 || b[1] !== 0 || b[2] !== 8 || (nd !== 3 && nd !== 4))
        throw new Error(file + ': not an uncompressed uint8 IDX file of 3 or 4 dims');
    const dims = [];
    for (let i = 0; i < nd; i++) dims.push(b.readUInt32BE(4 + 4 * i));
    const [n, c, h, w] = nd === 3 ? [dims[0], 1, dims[1], dims[2]] : dims;
    return {n, c, h, w, pixels: b.subarray(4 + 4 * nd)};
}

async function main() {
    const args = process.argv.slice(2);
    if (args.length < 2) {
        process.stderr.write('usage: node ort_run.js MODEL.onnx IMAGES.idx [--meta]\n');
        process.exit(2);
    }
    const ort = require(path.join(ortDir(), 'node_modules', 'onnxruntime-node'));
    const img = readIdx(args[1]);
    const x = new Float32Array(img.pixels.length);
    for (let i = 0; i < x.length; i++) x[i] = img.pixels[i] / 255;
    const session = await ort.InferenceSession.create(args[0]);
    if (args.includes('--meta')) {
        process.stderr.write('inputs: ' + session.inputNames + ', outputs: ' +
                             session.outputNames + '\n');
    }
    const input = new ort.Tensor('float32', x, [img.n, img.c, img.h, img.w]);
    const out = (await session.run({input}))['logits'];
    const k = out.dims[1];
    if (out.dims.length !== 2 || out.dims[0] !== img.n)
        throw new Error('logits have dims [' + out.dims + '], expected [' + img.n + ', K]');
    const lines = [];
    for (let i = 0; i < img.n; i++) {
        const row = [];
        for (let j = 0; j < k; j++) row.push(out.data[i * k + j].toPrecision(9));
        lines.push(row.join(','));
    }
    process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e) => {
    process.stderr.write('ort_run.js: ' + (e && e.message ? e.message : e) + '\n');
    process.exit(1);
});
