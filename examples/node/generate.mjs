#!/usr/bin/env node
// Text to image from an `edge-sched export-loop --rng cuda` (or `--rng cpu`) folder, with no Python: the
// CLIP tokenizer (tokenizer/tokenizer.json, @huggingface/tokenizers), the text encoder, denoise/model.onnx
// (the whole denoising loop: UNet, guidance, scheduler, torch's noise for the seed) and the VAE decoder in
// onnxruntime-node; a PNG with A1111's `parameters` text chunk.
//
//   node generate.mjs FOLDER --prompt P [--negative N] --seed S [--guidance G] --out FILE
//
// The same seed gives diffusers' image with torch.Generator("cuda").manual_seed(S) (rng cuda) or
// torch.Generator().manual_seed(S) (rng cpu).

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import zlib from "node:zlib";

import { Tokenizer } from "@huggingface/tokenizers";
import ort from "onnxruntime-node";

const USAGE = "usage: node generate.mjs FOLDER --prompt P [--negative N] --seed S [--guidance G] --out FILE";

function fail(message) {
  console.error(`generate.mjs: error: ${message}`);
  process.exit(2);
}

function readJson(file, what) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    fail(`${file}: not found (${what})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail(`${file}: not valid JSON (${e.message})`);
  }
}

// ---------------------------------------------------------------------------- arguments
function parseCommandLine(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        prompt: { type: "string" },
        negative: { type: "string", default: "" },
        seed: { type: "string" },
        guidance: { type: "string", default: "7.5" },
        out: { type: "string" },
      },
    });
  } catch (e) {
    fail(`${e.message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || values.prompt === undefined || values.seed === undefined || !values.out) {
    fail(USAGE);
  }
  if (!/^-?\d+$/.test(values.seed)) fail(`--seed must be an integer, got ${JSON.stringify(values.seed)}`);
  const seed = BigInt(values.seed);
  if (seed < -(2n ** 63n) || seed >= 2n ** 64n) fail(`--seed must be in [-2**63, 2**64), got ${values.seed}`);
  const guidance = Number(values.guidance);
  if (!Number.isFinite(guidance)) fail(`--guidance must be a number, got ${JSON.stringify(values.guidance)}`);
  if (!values.out.toLowerCase().endsWith(".png")) fail(`--out must name a .png file, got ${values.out}`);
  return { folder: positionals[0], prompt: values.prompt, negative: values.negative, seed, guidance, out: values.out };
}

// ---------------------------------------------------------------------------- text
function tokenId(tokenizer, token, what) {
  const content = typeof token === "string" ? token : token?.content;
  const id = content === undefined ? undefined : tokenizer.token_to_id(content);
  if (id === undefined) fail(`the tokenizer has no ${what} token ${JSON.stringify(content)}`);
  return id;
}

// transformers' CLIPTokenizer as diffusers calls it: padding="max_length", truncation=True
function makeTokenize(folder) {
  const json = readJson(path.join(folder, "tokenizer", "tokenizer.json"), "the fast tokenizer");
  const config = readJson(path.join(folder, "tokenizer", "tokenizer_config.json"), "the tokenizer config");
  const tokenizer = new Tokenizer(json, config);
  const maxLength = config.model_max_length ?? 77;
  const pad = tokenId(tokenizer, config.pad_token ?? config.eos_token, "padding");
  return (text) => {
    let ids = tokenizer.encode(text).ids; // [bos, ..., eos]
    if (ids.length > maxLength) ids = [...ids.slice(0, maxLength - 1), ids[ids.length - 1]];
    const out = new Array(maxLength).fill(pad);
    ids.forEach((id, i) => { out[i] = id; });
    return out;
  };
}

async function encodeText(session, ids) {
  const meta = session.inputMetadata?.find((m) => m.name === "input_ids");
  const int32 = meta?.type === "int32";
  const data = int32 ? Int32Array.from(ids) : BigInt64Array.from(ids, (v) => BigInt(v));
  const feeds = { input_ids: new ort.Tensor(int32 ? "int32" : "int64", data, [1, ids.length]) };
  const out = await session.run(feeds);
  return out.last_hidden_state ?? out[session.outputNames[0]];
}

// diffusers' get_guidance_scale_embedding(w = guidance - 1), float32 as torch computes it (LCM UNets)
function guidanceEmbedding(guidance, dim, rows) {
  const f = Math.fround;
  const half = Math.floor(dim / 2);
  const w = f(f(guidance - 1) * 1000);
  const step = f(f(Math.log(10000)) / f(half - 1));
  const row = new Float32Array(dim);
  for (let k = 0; k < half; k++) {
    const freq = f(Math.exp(f(k * -step)));
    const angle = f(w * freq);
    row[k] = Math.sin(angle);
    row[half + k] = Math.cos(angle);
  }
  const data = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) data.set(row, r * dim);
  return new ort.Tensor("float32", data, [rows, dim]);
}

// rows of `tensors` (each [1, ...]) repeated, concatenated on the batch axis
function stackRows(parts) {
  const [first] = parts;
  const size = first.data.length;
  const data = new Float32Array(size * parts.length);
  parts.forEach((t, i) => data.set(t.data, i * size));
  return new ort.Tensor("float32", data, [parts.length, ...first.dims.slice(1)]);
}

// ---------------------------------------------------------------------------- image
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// diffusers' VaeImageProcessor: (x / 2 + 0.5).clamp(0, 1) in float32, then (x * 255).round() as uint8
function toRgb(sample, index) {
  const [, channels, height, width] = sample.dims;
  const plane = height * width;
  const base = index * channels * plane;
  const f = Math.fround;
  const rgb = Buffer.alloc(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let p = 0; p < plane; p++) {
      const v = Math.min(Math.max(f(f(sample.data[base + c * plane + p] / 2) + 0.5), 0), 1);
      rgb[p * 3 + c] = roundHalfEven(f(v * 255));
    }
  }
  return { rgb, width, height };
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buffer) {
  let c = 0xffffffff;
  for (const byte of buffer) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

// A1111 writes its infotext as a tEXt chunk "parameters" (iTXt when it is not Latin-1)
function textChunk(key, text) {
  if (/^[\x00-\xff]*$/.test(text)) return chunk("tEXt", Buffer.from(`${key}\0${text}`, "latin1"));
  return chunk("iTXt", Buffer.concat([Buffer.from(`${key}\0\0\0\0\0`, "latin1"), Buffer.from(text, "utf8")]));
}

function png({ rgb, width, height }, parameters) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB, deflate, filter set 0, no interlace
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) rgb.copy(rows, y * (width * 3 + 1) + 1, y * width * 3, (y + 1) * width * 3);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    textChunk("parameters", parameters),
    chunk("IDAT", zlib.deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

function a1111Value(value) {
  const text = String(value);
  return /[,:\n]/.test(text) ? JSON.stringify(text) : text;
}

function infotext({ prompt, negative, seed, guidance }, loop, model) {
  const oneLine = (s) => s.split(/\r?\n/).join(" ");
  const fields = {
    Steps: loop.steps ?? loop.num_model_calls, Sampler: loop.scheduler.class, "CFG scale": guidance,
    Seed: seed.toString(), Size: `${loop.size.width}x${loop.size.height}`, Model: model,
    RNG: loop.rng === "cuda" ? "NV" : "CPU", // A1111's names of the two noise sources
  };
  const lines = [oneLine(prompt)];
  if (negative) lines.push(`Negative prompt: ${oneLine(negative)}`);
  lines.push(Object.entries(fields).map(([k, v]) => `${k}: ${a1111Value(v)}`).join(", "));
  return lines.join("\n");
}

function writeAtomically(file, bytes) {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------- main
async function main() {
  const args = parseCommandLine(process.argv.slice(2));
  const folder = path.resolve(args.folder);
  const manifest = readJson(path.join(folder, "edge_sched.json"), "the export's manifest");
  const loop = manifest.loop;
  if (!loop) fail(`${folder}: no "loop" in edge_sched.json; make the folder with edge-sched export-loop`);
  if (loop.rng !== "cuda" && loop.rng !== "cpu") {
    fail(`${folder}: the loop graph takes its noise as inputs (rng ${JSON.stringify(loop.rng)}); this client ` +
         "needs one that draws it from the seed: edge-sched export-loop ... --rng cuda (or --rng cpu)");
  }
  if (!fs.existsSync(path.dirname(path.resolve(args.out)))) fail(`--out: folder ${path.dirname(args.out)} does not exist`);
  const options = { executionProviders: ["cpu"], graphOptimizationLevel: "all" };
  const load = (component) => ort.InferenceSession.create(path.join(folder, component, "model.onnx"), options);

  const tokenize = makeTokenize(folder);
  const textEncoder = await load("text_encoder");
  const batch = loop.batch;
  const inputs = new Set(loop.inputs.map((i) => i.name));
  const lcm = inputs.has("timestep_cond");
  const guided = args.guidance > 1 && !lcm; // diffusers guides only above 1; LCM embeds the scale instead
  const positive = await encodeText(textEncoder, tokenize(args.prompt));
  const rows = Array(batch).fill(positive);
  const prompts = guided ? [...Array(batch).fill(await encodeText(textEncoder, tokenize(args.negative))), ...rows] : rows;
  await textEncoder.release();

  const feeds = {
    prompt_embeds: stackRows(prompts),
    guidance_scale: new ort.Tensor("float32", Float32Array.of(args.guidance), []),
    seed: new ort.Tensor("int64", BigInt64Array.of(BigInt.asIntN(64, args.seed)), []),
  };
  if (lcm) {
    const spec = loop.inputs.find((i) => i.name === "timestep_cond");
    feeds.timestep_cond = guidanceEmbedding(args.guidance, spec.shape[1], prompts.length);
  }
  for (const name of inputs) if (!(name in feeds)) fail(`the loop graph needs input ${name}, which this client does not make`);
  const denoise = await load("denoise");
  const { latents } = await denoise.run(feeds);
  await denoise.release();

  const scale = Math.fround(loop.decode.scaling_factor);
  const scaled = new ort.Tensor("float32", latents.data.map((v) => v / scale), latents.dims);
  const vae = await load("vae_decoder");
  const sample = (await vae.run({ latent_sample: scaled }))[vae.outputNames[0]];
  await vae.release();

  const text = infotext(args, loop, path.basename(folder));
  for (let i = 0; i < batch; i++) {
    const file = batch === 1 ? args.out : args.out.replace(/(\.png)$/i, `-${i}$1`);
    writeAtomically(file, png(toRgb(sample, i), text));
    console.log(file);
  }
}

main().catch((e) => fail(e?.message ?? String(e)));
