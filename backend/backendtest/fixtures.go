package backendtest

import (
	"encoding/json"

	"github.com/steergate/steergate/backend"
)

// Fixture is a request the adapters' golden tests convert.
type Fixture struct {
	Name    string
	Request *backend.Request
}

func pf(x float64) *float64 { return &x }

// Fixtures are requests in the gateway's terms covering what adapters map:
// sampling, stop and logprobs; tools with a call and its result; an image;
// a JSON schema with reasoning effort; a continuation; a raw completion.
func Fixtures() []Fixture {
	oneAtATime := false // parallel_tool_calls: false
	schema := json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)
	return []Fixture{
		{"chat", &backend.Request{Model: "m", Seed: seed(7), Temperature: pf(0.5), TopP: pf(0.9), MaxTokens: 32, Stop: []string{"\n\n"},
			Logprobs: true, TopLogprobs: 2, User: "u1", Messages: []backend.Message{
				{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why is the sky blue?"}},
			Extra: map[string]json.RawMessage{"top_k": json.RawMessage(`5`), "vendor_field": json.RawMessage(`{"a":[1,2]}`)}}},
		{"tools", &backend.Request{Model: "m", Seed: seed(1), ParallelToolCalls: &oneAtATime, ToolChoice: json.RawMessage(`"auto"`),
			Tools: []backend.Tool{{Type: "function", Name: "get_weather", Description: "The weather in a city.", Parameters: schema}},
			Messages: []backend.Message{
				{Role: "user", Content: "Weather in Paris?"},
				{Role: "assistant", ToolCalls: []backend.ToolCall{{ID: "call_1", Type: "function", Name: "get_weather", Arguments: `{"city":"Paris"}`}}},
				{Role: "tool", ToolCallID: "call_1", Content: `{"temp":21}`}}}},
		{"image", &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Content: "What is this?", Parts: []backend.Part{
			{Type: "text", Text: "What is this?"}, {Type: "image_url", ImageURL: "data:image/png;base64,iVBORw0KGgo="}}}}}},
		{"json_schema", &backend.Request{Model: "m", ReasoningEffort: "low", Messages: []backend.Message{{Role: "user", Content: "A city, as JSON."}},
			ResponseFormat: &backend.ResponseFormat{Type: "json_schema", SchemaName: "city", Schema: schema}}},
		{"continue", &backend.Request{Model: "m", Continue: true, MaxTokens: 8, Messages: []backend.Message{
			{Role: "user", Content: "Why is the sky blue?"}, {Role: "assistant", Content: "Because air"}}}},
		{"completion", &backend.Request{Model: "m", Prompt: "Light travels at", MaxTokens: 6, Logprobs: true, TopLogprobs: 2}},
	}
}
