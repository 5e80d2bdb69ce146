// Steered requests through the official OpenAI Node SDK: best-of-N,
// particles and guided decoding, streamed and not. Usage: node steer.mjs BASE_URL. Exits
// non-zero on the first failed check.
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-none", maxRetries: 0 });
const base = { model: "reference", messages: [{ role: "user", content: "How can I sleep better?" }], seed: 4, max_tokens: 40 };

for (const steering of [{ strategy: "best_of_n", n: 4 }, { strategy: "particles", n: 6, step_tokens: 12, lambda: 30 }, { strategy: "guided", beta: 0.5 }]) {
  const params = { ...base, steering };
  const chat = await client.chat.completions.create(params);
  const report = chat.steering;
  assert.equal(report.strategy, steering.strategy);
  assert.equal(report.candidates.filter((c) => c.chosen).length, 1, "one chosen candidate");
  if (steering.strategy === "guided") {
    assert.ok(report.steps >= 1 && report.backend_calls === report.steps, "guided reports its steps");
  }
  if (steering.strategy === "particles") {
    assert.ok(report.steps >= 1 && report.ess.length === report.steps, "particles report steps and ESS");
    const weights = report.candidates.reduce((s, c) => s + c.extra.weight, 0);
    assert.ok(Math.abs(weights - 1) < 1e-9, "final weights sum to 1");
  }
  let streamed = "", usage = null;
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    if (chunk.choices.length === 0) { usage = chunk.usage; continue; }
    streamed += chunk.choices[0].delta.content ?? "";
  }
  assert.equal(streamed, chat.choices[0].message.content, `${steering.strategy}: stream equals non-stream`);
  assert.deepEqual(usage, chat.usage);
}

await assert.rejects(
  client.chat.completions.create({ ...base, steering: { strategy: "particles", resample: "greedy" } }),
  (err) => err instanceof OpenAI.BadRequestError && err.param === "steering.resample",
);
console.log("node sdk steering: all checks passed");
