// An agent loop written with the official OpenAI Node SDK, unchanged, run
// against Steergate in front of a tool-calling backend: tools defined, the
// model calls one, the application answers with a tool message, the model
// finishes; once plain, once with best-of-N over the calls, and once
// streamed. Usage: node tools.mjs BASE_URL. Exits non-zero on the first
// failed check.
import OpenAI from "openai";
import assert from "node:assert/strict";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-none", maxRetries: 0 });
const tools = [{
  type: "function",
  function: {
    name: "get_weather", description: "The weather in a city.",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false },
  },
}];
const run = { get_weather: ({ city }) => JSON.stringify({ city, temp: 21 }) };

async function agent(extra) {
  const messages = [{ role: "user", content: "What is the weather in Paris?" }];
  for (let turn = 0; turn < 4; turn++) {
    const res = await client.chat.completions.create({ model: "tool-model", messages, tools, seed: 3, ...extra });
    const msg = res.choices[0].message;
    messages.push(msg);
    if (res.choices[0].finish_reason !== "tool_calls") return { messages, res };
    for (const call of msg.tool_calls) {
      const args = JSON.parse(call.function.arguments);
      messages.push({ role: "tool", tool_call_id: call.id, content: run[call.function.name](args) });
    }
  }
  throw new Error("the agent did not finish");
}

for (const extra of [{}, { steering: { strategy: "best_of_n", n: 3 } }]) {
  const { messages, res } = await agent(extra);
  assert.equal(messages.length, 4, "user, call, tool result, answer");
  assert.equal(messages[1].tool_calls[0].function.name, "get_weather");
  assert.match(res.choices[0].message.content, /The tool says: \{"city":"Paris","temp":21\}/);
  if (extra.steering) assert.equal(res.steering.strategy, "best_of_n");
}

// Streamed: the SDK's helper rebuilds the call from the deltas.
const stream = client.chat.completions.stream({ model: "tool-model", seed: 3, tools,
  messages: [{ role: "user", content: "What is the weather in Paris?" }] });
const done = await stream.finalChatCompletion();
assert.equal(done.choices[0].finish_reason, "tool_calls");
assert.deepEqual(JSON.parse(done.choices[0].message.tool_calls[0].function.arguments), { city: "Paris", unit: "celsius" });
console.log("node agent loop: ok");
