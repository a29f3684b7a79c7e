#!/usr/bin/env node
// The ONNX Runtime contender: the reference's image tower exported to ONNX
// (bench/export_onnx.py) run by onnxruntime-node on its CPU execution provider,
// timed the way bench/reference.py times the reference: batches of random
// preprocessed pixels for SECONDS after two warm-up runs.
//
//   node bench/ort.js --model TOWER.onnx [--geometry vit-b32-224] [--batch 8] [--seconds 10]
//        [--threads N] [--inter-op 1] [--spinning 1] [--execution-mode sequential]
//        [--check REFERENCE.json]
//
// --threads: intraOpNumThreads (default: the CPUs this process may use).
// --spinning: session.intra_op.allow_spinning (ORT's default 1: pool threads
// busy-wait between ops). --check: compare against the output
// export_onnx.py --reference-out wrote, then time as usual.
// Prints one JSON line. Install the runtime with `npm install --ignore-scripts`
// in bench/ (the CPU runtime is inside the npm package).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

const GEOMETRY_RESOLUTION = {
  'vit-b32-224': 224, 'vit-b32-384': 384, 'vit-b16-224': 224,
  'vit-b16-384': 384, 'vit-l14-224': 224, 'vit-l14-336': 336,
};
// The CPU features that decide which kernels a contender can use.
const FLAGS_OF_INTEREST = ['avx2', 'fma', 'f16c', 'avx512f', 'avx512dq', 'avx512bw', 'avx512vl',
  'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_tile', 'amx_bf16', 'amx_int8'];

function parseArgs(argv) {
  const args = {
    model: null, geometry: 'vit-b32-224', batch: 8, seconds: 10, threads: os.availableParallelism(),
    'inter-op': 1, spinning: 1, 'execution-mode': 'sequential', check: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!(key in args) || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete argument ${argv[i]}; see the head of bench/ort.js`);
    }
    const value = argv[++i];
    args[key] = typeof args[key] === 'number' ? Number(value) : value;
  }
  if (!args.model) throw new Error('--model TOWER.onnx is required (bench/export_onnx.py writes it)');
  if (!(args.geometry in GEOMETRY_RESOLUTION)) throw new Error(`unknown geometry ${args.geometry}`);
  return args;
}

function cpuInfo() {
  const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const field = (name) => (text.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm')) || [])[1] || '';
  const flags = new Set(field('flags').split(/\s+/));
  return { model: field('model name').trim(), flags: FLAGS_OF_INTEREST.filter((f) => flags.has(f)) };
}

function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ort = require('onnxruntime-node');
  const version = require('onnxruntime-node/package.json').version;
  const resolution = GEOMETRY_RESOLUTION[args.geometry];
  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: args.threads,
    interOpNumThreads: args['inter-op'],
    executionMode: args['execution-mode'],
    extra: { session: { intra_op: { allow_spinning: String(args.spinning) } } },
  };
  const result = {
    implementation: `onnxruntime-node ${version} CPU`,
    geometry: args.geometry,
    batch: args.batch,
    precision: 'fp32',
    threads: args.threads,
    inter_op_threads: args['inter-op'],
    intra_op_spinning: args.spinning,
    execution_mode: args['execution-mode'],
    graph_optimization: 'all',
    cpu: cpuInfo(),
  };
  const session = await ort.InferenceSession.create(args.model, options);
  const input = session.inputNames[0];

  if (args.check) {
    const ref = JSON.parse(fs.readFileSync(args.check, 'utf8'));
    const out = await session.run({ [input]: new ort.Tensor('float32', Float32Array.from(ref.input), ref.shape) });
    const got = out[session.outputNames[0]].data;
    let maxAbs = 0;
    let maxRef = 0;
    for (let i = 0; i < got.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(got[i] - ref.output[i]));
      maxRef = Math.max(maxRef, Math.abs(ref.output[i]));
    }
    result.check = { max_abs_difference: maxAbs, max_abs_reference: maxRef, ok: maxAbs <= 1e-3 * Math.max(1, maxRef) };
  }

  const pixels = new Float32Array(args.batch * 3 * resolution * resolution);
  for (let i = 0; i < pixels.length; i++) pixels[i] = 2 * Math.random() - 1;
  const feeds = { [input]: new ort.Tensor('float32', pixels, [args.batch, 3, resolution, resolution]) };
  for (let i = 0; i < 2; i++) await session.run(feeds);
  const ms = [];
  const start = process.hrtime.bigint();
  while (ms.length < 3 || Number(process.hrtime.bigint() - start) / 1e9 < args.seconds) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ms.sort((a, b) => a - b);
  const total = ms.reduce((a, b) => a + b, 0);
  Object.assign(result, {
    images_per_second: (args.batch * ms.length) / (total / 1000),
    image_batch_ms: { p50: percentile(ms, 0.5), p95: percentile(ms, 0.95), mean: total / ms.length },
    image_batches: ms.length,
    peak_rss_mib: process.resourceUsage().maxRSS / 1024,
    model_file: path.basename(args.model),
  });
  await session.release();
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(`ort.js: ${e.message}`);
  process.exit(1);
});
