// Drives a running Steergate with the official OpenAI Node SDK, unchanged.
// Usage: node sdk.mjs BASE_URL   (the gateway's /v1 URL). Exits non-zero on
// the first failed check.
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-none", maxRetries: 0 });

const models = await client.models.list();
assert.ok(models.data.some((m) => m.id === "reference"), "models lists reference");

const params = { model: "reference", messages: [{ role: "user", content: "Why is the sky blue?" }], seed: 7, max_tokens: 30 };
const chat = await client.chat.completions.create(params);
assert.equal(chat.object, "chat.completion");
assert.ok(chat.choices[0].message.content.length > 0, "chat has content");
assert.equal(chat.usage.total_tokens, chat.usage.prompt_tokens + chat.usage.completion_tokens);

let streamed = "", usage = null, first = true;
const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  if (chunk.choices.length === 0) { usage = chunk.usage; continue; }
  if (first) { assert.equal(chunk.choices[0].delta.role, "assistant"); first = false; }
  streamed += chunk.choices[0].delta.content ?? "";
}
assert.equal(streamed, chat.choices[0].message.content, "stream equals non-stream for the same seed");
assert.deepEqual(usage, chat.usage);

const many = await client.chat.completions.create({ ...params, n: 3 });
assert.deepEqual(many.choices.map((c) => c.index), [0, 1, 2]);

await assert.rejects(
  client.chat.completions.create({ ...params, model: "nope" }),
  (err) => err instanceof OpenAI.NotFoundError && err.param === "model",
);
await assert.rejects(
  client.chat.completions.create({ ...params, temperature: 9 }),
  (err) => err instanceof OpenAI.BadRequestError && err.param === "temperature",
);
console.log("node sdk: all checks passed");
