// tools/llamacpp_tokenize.mjs — llama.cpp's own tokenizer (node-llama-cpp 3.21.1) on the
// tokenizer metadata of a GGUF file, to check lorafit's reading of the same metadata.
//
//   node tools/llamacpp_tokenize.mjs MODEL.gguf TEXTS.json
// TEXTS.json is a JSON array of strings; prints a JSON array with each text's ids, special
// tokens written in the text parsed as tokens and nothing added (no BOS), as llama_tokenize
// with add_special false and parse_special true. The file is loaded vocabulary only: it needs
// general.architecture and that architecture's header keys, no tensors.
//
// node-llama-cpp is installed outside the repository (LLAMACPP_DIR, default build/llamacpp):
//   npm i -E --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modelPath, textsPath] = process.argv.slice(2);
if (!modelPath || !textsPath) throw new Error("usage: MODEL.gguf TEXTS.json");
const texts = JSON.parse(fs.readFileSync(textsPath, "utf8"));
const dir = process.env.LLAMACPP_DIR || "build/llamacpp";
const entry = path.resolve(dir, "node_modules/node-llama-cpp/dist/index.js");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: path.resolve(modelPath), gpuLayers: 0, vocabOnly: true });
const out = texts.map((t) => Array.from(model.tokenize(t, true)));
console.log(JSON.stringify(out));
await model.dispose();
await llama.dispose();
