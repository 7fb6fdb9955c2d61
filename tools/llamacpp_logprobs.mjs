// tools/llamacpp_logprobs.mjs — teacher-forced log-probabilities in llama.cpp itself
// (node-llama-cpp 3.21.1, llama.cpp prebuilt for CPUs), to check lorafit's against the real
// client.
//
//   node tools/llamacpp_logprobs.mjs --model base.gguf [--lora adapter.gguf] \
//        --ids "1 2 3 ..." [--context N]
// evaluates the ids in one pass and prints, for each position i but the last, one line
// "ARGMAX LOGP": the id of the highest logit after ids[0..i] (any of them on an exact tie)
// and ln p(ids[i+1]), p the softmax of the logits.
//
// Exact mode (F32 KV cache, flash attention off; the install, threads and context size:
// llamacpp_exact.mjs). The probabilities are node-llama-cpp's at temperature 0: its greedy
// sampler leaves the logits as they are and it normalizes all of them (in float32).
import { exactContext, ids, loadLlama } from "./llamacpp_exact.mjs";

const job = { lora: [] };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i], v = argv[i + 1];
  if (v === undefined) throw new Error(`${k} needs a value`);
  if (k === "--model") job.model = v;
  else if (k === "--lora") job.lora.push(v);
  else if (k === "--ids") job.ids = ids(v);
  else if (k === "--context") job.context = Number(v);
  else throw new Error(`unknown argument ${k}`);
}
if (!job.model || !job.ids || job.ids.length < 2)
  throw new Error("usage: --model FILE.gguf [--lora FILE.gguf] --ids \"1 2 3 ...\" [--context N]");

const llama = await loadLlama();
const { model, context } = await exactContext(llama, job.model, job.lora, job.context);
const input = job.ids.map((t) => [t, { generateNext: { probabilities: true } }]);
const out = await context.getSequence().controlledEvaluate(input);
const lines = [];
for (let i = 0; i + 1 < job.ids.length; i++) {
  const probs = out[i]?.next?.probabilities;
  if (!probs) throw new Error(`no probabilities at position ${i}`);
  const argmax = probs.keys().next().value; // the map is sorted, highest first
  const p = probs.get(job.ids[i + 1]) ?? 0;
  lines.push(`${argmax} ${Math.log(p).toFixed(6)}`);
}
console.log(lines.join("\n"));
await context.dispose();
await model.dispose();
await llama.dispose();
