// tools/llamacpp_greedy.mjs — greedy decoding in llama.cpp itself (node-llama-cpp 3.21.1,
// llama.cpp prebuilt for CPUs), to check lorafit's GGUF files against the real client.
//
//   node tools/llamacpp_greedy.mjs --model base.gguf [--lora adapter.gguf] \
//        --prompt-ids "1 2 3" [-n 200] [--context N]
//   node tools/llamacpp_greedy.mjs --jobs FILE     one job a line:
//        MODEL.gguf <TAB> ADAPTER.gguf or - <TAB> PROMPT IDS <TAB> N [<TAB> CONTEXT]
// prints, per job, the prompt ids and the generated ids on one line, as `lorafit generate`.
//
// node-llama-cpp is installed outside the repository (LLAMACPP_DIR, default build/llamacpp):
//   npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1
// For exact comparisons: CPU only, threads = the core count (its default of 4 on 2 cores is
// hundreds of times slower), an F32 KV cache and flash attention off (with F16 caches tiny
// models diverge at near-ties), greedy sampling straight from token ids. LLAMACPP_THREADS
// overrides the thread count: on a machine busy with other work, llama.cpp's spinning
// threads make 2 threads on 2 cores far slower than 1 (the test uses 1).
// The context size is the model's training context capped at 2048 unless given: it decides
// which longrope factors llama.cpp's phi3 uses (the long ones when the context, which
// llama.cpp rounds up to a multiple of 256, exceeds rope.scaling.original_context_length).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

function ids(text) {
  const v = text.trim().split(/[\s,]+/).map(Number);
  if (!v.length || v.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`bad ids: ${text}`);
  return v;
}

function parseArgs(argv) {
  const job = { lora: [], n: 200 };
  let jobs = null;
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === "--model") job.model = v;
    else if (k === "--lora") job.lora.push(v);
    else if (k === "--prompt-ids") job.prompt = ids(v);
    else if (k === "-n") job.n = Number(v);
    else if (k === "--context") job.context = Number(v);
    else if (k === "--jobs") jobs = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (jobs) {
    return fs.readFileSync(jobs, "utf8").split("\n").filter((l) => l.trim()).map((l) => {
      const [model, lora, prompt, n, context] = l.split("\t");
      return {
        model, lora: lora && lora !== "-" ? [lora] : [], prompt: ids(prompt), n: Number(n),
        context: context ? Number(context) : undefined,
      };
    });
  }
  if (!job.model || !job.prompt)
    throw new Error(
      "usage: --model FILE.gguf [--lora FILE.gguf] --prompt-ids \"1 2 3\" [-n N] [--context N] | --jobs FILE");
  return [job];
}

const jobs = parseArgs(process.argv.slice(2));
const dir = process.env.LLAMACPP_DIR || "build/llamacpp";
const entry = path.resolve(dir, "node_modules/node-llama-cpp/dist/index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const threads = Number(process.env.LLAMACPP_THREADS) ||
  (os.availableParallelism ? os.availableParallelism() : os.cpus().length);
for (const job of jobs) {
  const model = await llama.loadModel({ modelPath: path.resolve(job.model), gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: job.context || Math.min(model.trainContextSize, 2048),
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    ...(job.lora.length ? { lora: { adapters: job.lora.map((f) => ({ filePath: path.resolve(f) })) } } : {}),
  });
  const seq = context.getSequence();
  const out = [...job.prompt];
  if (job.n > 0) {
    for await (const token of seq.evaluate(job.prompt, { temperature: 0, yieldEogToken: true })) {
      out.push(token);
      if (out.length - job.prompt.length >= job.n) break;
    }
  }
  console.log(out.join(" "));
  await context.dispose();
  await model.dispose();
}
await llama.dispose();
