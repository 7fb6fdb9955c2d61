// tools/llamacpp_greedy.mjs — greedy decoding in llama.cpp itself (node-llama-cpp 3.21.1,
// llama.cpp prebuilt for CPUs), to check lorafit's GGUF files against the real client.
//
//   node tools/llamacpp_greedy.mjs --model base.gguf [--lora adapter.gguf] \
//        --prompt-ids "1 2 3" [-n 200] [--context N]
//   node tools/llamacpp_greedy.mjs --jobs FILE     one job a line:
//        MODEL.gguf <TAB> ADAPTER.gguf or - <TAB> PROMPT IDS <TAB> N [<TAB> CONTEXT]
// prints, per job, the prompt ids and the generated ids on one line, as `lorafit generate`.
//
// Exact mode (F32 KV cache, flash attention off; the install, threads and context size:
// llamacpp_exact.mjs), greedy sampling straight from token ids.
import fs from "node:fs";

import { exactContext, ids, loadLlama } from "./llamacpp_exact.mjs";

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
const llama = await loadLlama();
for (const job of jobs) {
  const { model, context } = await exactContext(llama, job.model, job.lora, job.context);
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
