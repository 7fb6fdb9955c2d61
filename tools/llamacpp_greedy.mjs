// tools/llamacpp_greedy.mjs — greedy decoding in llama.cpp itself (node-llama-cpp 3.21.1,
// llama.cpp prebuilt for CPUs), to check lorafit's GGUF files against the real client.
//
//   node tools/llamacpp_greedy.mjs --model base.gguf [--lora adapter.gguf] \
//        --prompt-ids "1 2 3" [-n 200]
// prints the prompt ids and the generated ids on one line, as `lorafit generate` does.
//
// node-llama-cpp is installed outside the repository (LLAMACPP_DIR, default build/llamacpp):
//   npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1
// For exact comparisons: CPU only, threads = the core count (its default of 4 on 2 cores is
// hundreds of times slower), an F32 KV cache and flash attention off (with F16 caches tiny
// models diverge at near-ties), greedy sampling straight from token ids. LLAMACPP_THREADS
// overrides the thread count: on a machine busy with other work, llama.cpp's spinning
// threads make 2 threads on 2 cores far slower than 1 (the test uses 1).
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
  const a = { lora: [], n: 200 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = argv[i + 1];
    if (k === "--model") a.model = v, i++;
    else if (k === "--lora") a.lora.push(v), i++;
    else if (k === "--prompt-ids") a.prompt = v.trim().split(/[\s,]+/).map(Number), i++;
    else if (k === "-n") a.n = Number(v), i++;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.model || !a.prompt || a.prompt.some((x) => !Number.isInteger(x) || x < 0))
    throw new Error("usage: --model FILE.gguf [--lora FILE.gguf] --prompt-ids \"1 2 3\" [-n N]");
  return a;
}

const args = parseArgs(process.argv.slice(2));
const dir = process.env.LLAMACPP_DIR || "build/llamacpp";
const entry = path.resolve(dir, "node_modules/node-llama-cpp/dist/index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: path.resolve(args.model), gpuLayers: 0 });
const context = await model.createContext({
  contextSize: Math.min(model.trainContextSize, 2048),
  threads: Number(process.env.LLAMACPP_THREADS) ||
    (os.availableParallelism ? os.availableParallelism() : os.cpus().length),
  flashAttention: false,
  experimentalKvCacheKeyType: "F32",
  experimentalKvCacheValueType: "F32",
  ...(args.lora.length ? { lora: { adapters: args.lora.map((f) => ({ filePath: path.resolve(f) })) } } : {}),
});
const seq = context.getSequence();
const out = [...args.prompt];
if (args.n > 0) {
  for await (const token of seq.evaluate(args.prompt, { temperature: 0 })) {
    out.push(token);
    if (out.length - args.prompt.length >= args.n) break;
  }
}
console.log(out.join(" "));
await context.dispose();
await model.dispose();
await llama.dispose();
