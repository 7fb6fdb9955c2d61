// tools/llamacpp_exact.mjs — llama.cpp (node-llama-cpp 3.21.1, prebuilt for CPUs) in exact mode,
// for the scripts that check lorafit's GGUF files against the real client
// (llamacpp_greedy.mjs, llamacpp_logprobs.mjs).
//
// node-llama-cpp is installed outside the repository (LLAMACPP_DIR, default build/llamacpp):
//   npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1
// For exact comparisons: CPU only, threads = the core count (its default of 4 on 2 cores is
// hundreds of times slower), an F32 KV cache and flash attention off (with F16 caches tiny
// models diverge at near-ties). LLAMACPP_THREADS overrides the thread count: on a machine busy
// with other work, llama.cpp's spinning threads make 2 threads on 2 cores far slower than 1
// (the tests use 1).
// The context size is the model's training context capped at 2048 unless given: it decides
// which longrope factors llama.cpp's phi3 uses (the long ones when the context, which
// llama.cpp rounds up to a multiple of 256, exceeds rope.scaling.original_context_length).
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

// The token ids of text ("1 2 3" or "1,2,3").
export function ids(text) {
  const v = text.trim().split(/[\s,]+/).map(Number);
  if (!v.length || v.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`bad ids: ${text}`);
  return v;
}

// The llama.cpp instance (CPU only, errors logged only).
export async function loadLlama() {
  const dir = process.env.LLAMACPP_DIR || "build/llamacpp";
  const entry = path.resolve(dir, "node_modules/node-llama-cpp/dist/index.js");
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
  return getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
}

// The model file and its exact-mode context with the adapter files in `lora` applied at
// scale 1; contextSize 0 or undefined: the default above. Dispose both.
export async function exactContext(llama, modelPath, lora, contextSize) {
  const model = await llama.loadModel({ modelPath: path.resolve(modelPath), gpuLayers: 0 });
  const threads = Number(process.env.LLAMACPP_THREADS) ||
    (os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const context = await model.createContext({
    contextSize: contextSize || Math.min(model.trainContextSize, 2048),
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    ...(lora.length ? { lora: { adapters: lora.map((f) => ({ filePath: path.resolve(f) })) } } : {}),
  });
  return { model, context };
}
