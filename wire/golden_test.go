package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/test/golden"
)

// TestGoldenRequests: what the gateway makes of client request bodies
// (the backend request), and how the OpenAI adapter sends that request on
// (every message as the client sent it). Regenerate with -update.
func TestGoldenRequests(t *testing.T) {
	files, _ := filepath.Glob("testdata/requests/*.json")
	if len(files) < 5 {
		t.Fatalf("only %d requests", len(files))
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		req, err := DecodeChat(body)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		br, err := ChatToBackend(req, DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		golden.Check(t, filepath.Join("testdata", "golden", name+".backend.json"), br)
		up, err := Marshal(ChatRequestOf(br, req.Stream), br.Extra)
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, filepath.Join("testdata", "golden", name+".upstream.json"), up)
	}
}

// TestGoldenResponses: how generations reach the client, whole and as
// stream chunks: a tool call (content null), a refusal, reasoning, the
// fields a backend sent that the gateway does not interpret.
func TestGoldenResponses(t *testing.T) {
	for name, g := range map[string]*backend.Generation{
		"tool_call": {Model: "m", SystemFingerprint: "fp_1", Extra: map[string]json.RawMessage{"service_tier": json.RawMessage(`"default"`)},
			UsageExtra: map[string]json.RawMessage{"prompt_tokens_details": json.RawMessage(`{"cached_tokens":0}`)},
			Choices: []backend.Choice{{FinishReason: backend.FinishToolCalls, Reasoning: "Paris, then.",
				ToolCalls: []backend.ToolCall{{ID: "call_1", Type: "function", Name: "get_weather", Arguments: `{"city":"Paris"}`}}}},
			Usage: backend.Usage{PromptTokens: 11, CompletionTokens: 7}},
		"refusal": {Model: "m", Choices: []backend.Choice{{Refusal: "I can't help with that.", FinishReason: "stop",
			Extra: map[string]json.RawMessage{"annotations": json.RawMessage(`[]`)}}}},
		"logprobs": {Model: "m", Choices: []backend.Choice{{Text: "Hi", FinishReason: "stop",
			Logprobs: []backend.TokenLogprob{{Token: "Hi", Logprob: -0.5, Top: []backend.TopLogprob{{Token: "Hi", Logprob: -0.5}}}}}}},
	} {
		golden.Check(t, filepath.Join("testdata", "golden", name+".response.json"), Chat("chatcmpl-1", "m", 1700000000, g))
		var chunks []any
		for i, c := range g.Choices {
			d := backend.Delta{Index: i, Text: c.Text, Reasoning: c.Reasoning, Refusal: c.Refusal, ToolCalls: c.ToolCalls, Logprobs: c.Logprobs}
			chunks = append(chunks, ChatChunkOf("chatcmpl-1", "m", 1700000000, d, true),
				ChatChunkOf("chatcmpl-1", "m", 1700000000, backend.Delta{Index: i, FinishReason: c.FinishReason}, false))
		}
		golden.Check(t, filepath.Join("testdata", "golden", name+".chunks.json"), chunks)
	}
}
