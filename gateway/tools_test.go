package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

// toolGateway serves a gateway whose model "tool-model" is the tool
// server behind an OpenAI-compatible adapter of the given flavour, with the
// rules reward.
func toolGateway(t *testing.T, flavour string) (*env, *backendtest.ToolServer) {
	t.Helper()
	ts := backendtest.StartToolServer(t)
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "tool-model", Backend: upstream(t, flavour, ts.URL, flavour), Target: "tool-model"}); err != nil {
		t.Fatal(err)
	}
	r, err := rules.New(rules.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// A response cache for requests that ask for it (steering.cache), so
	// that the other requests here reach the tool server each time.
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": r}, Limits: steering.Limits{MaxSamples: 16},
		Responses: steering.NewResponseCache(cache.NewMemory(1<<20), false, time.Hour, 1<<20, nil)})
	return serveWith(t, defaultOptions(), rt, eng), ts
}

var weatherTool = openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name: "get_weather", Description: openai.String("The weather in a city."),
	Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{
		"city": map[string]any{"type": "string"}, "unit": map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}}},
		"required": []string{"city"}, "additionalProperties": false},
})

// direct is an SDK client of the tool server itself, to compare with.
func direct(ts *backendtest.ToolServer) openai.Client {
	return openai.NewClient(option.WithBaseURL(ts.URL+"/"), option.WithAPIKey("sk-none"), option.WithMaxRetries(0))
}

// An agent loop runs unchanged through the gateway: the model calls a
// tool, the application answers with a tool message, the model finishes;
// every message reaches the backend as the client sent it, and the call
// comes back as the backend made it, streamed and not, on every flavour.
func TestToolUseRoundTrip(t *testing.T) {
	for _, flavour := range []string{"openai", "vllm", "llamacpp"} {
		t.Run(flavour, func(t *testing.T) {
			e, ts := toolGateway(t, flavour)
			ctx := context.Background()
			params := openai.ChatCompletionNewParams{Model: "tool-model", Seed: openai.Int(3),
				Messages: userMsg("What is the weather in Paris?"), Tools: []openai.ChatCompletionToolUnionParam{weatherTool}}
			a, err := e.client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			dc := direct(ts)
			want, err := dc.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if a.Choices[0].FinishReason != "tool_calls" || len(a.Choices[0].Message.ToolCalls) != 1 {
				t.Fatalf("answer %+v", a.Choices[0])
			}
			got, exp := a.Choices[0].Message.ToolCalls[0], want.Choices[0].Message.ToolCalls[0]
			if got.ID != exp.ID || got.Function.Name != exp.Function.Name || got.Function.Arguments != exp.Function.Arguments {
				t.Errorf("tool call %+v, the backend made %+v", got, exp)
			}
			// Fields the gateway does not interpret come back.
			if a.JSON.SystemFingerprint.Raw() != `"fp_tool"` || a.ServiceTier != "default" || a.Usage.PromptTokensDetails.JSON.CachedTokens.Raw() != "0" ||
				!a.Choices[0].Message.JSON.Annotations.Valid() {
				t.Errorf("fields lost: %s", a.RawJSON())
			}

			// The application runs the tool and answers.
			params.Messages = append(params.Messages, a.Choices[0].Message.ToParam(), openai.ToolMessage(`{"temp": 21}`, got.ID))
			final, err := e.client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if final.Choices[0].Message.Content != `The tool says: {"temp": 21}` || final.Choices[0].FinishReason != "stop" {
				t.Errorf("final %+v", final.Choices[0])
			}
			var sent struct {
				Messages []json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(ts.Last(), &sent); err != nil {
				t.Fatal(err)
			}
			var asSent struct {
				Messages []json.RawMessage `json:"messages"`
			}
			b, _ := json.Marshal(params)
			_ = json.Unmarshal(b, &asSent)
			if len(sent.Messages) != 3 || string(sent.Messages[1]) != string(asSent.Messages[1]) || string(sent.Messages[2]) != string(asSent.Messages[2]) {
				t.Errorf("the backend got messages\n%s\nthe client sent\n%s", sent.Messages, asSent.Messages)
			}

			// Streamed: the SDK's accumulator rebuilds the same call through
			// the gateway as from the backend directly.
			params.Messages = params.Messages[:1]
			acc, wantAcc := accumulate(t, e.client, params), accumulate(t, direct(ts), params)
			if len(acc.Choices) != 1 || len(acc.Choices[0].Message.ToolCalls) != 1 ||
				acc.Choices[0].Message.ToolCalls[0].Function.Arguments != wantAcc.Choices[0].Message.ToolCalls[0].Function.Arguments ||
				acc.Choices[0].Message.ToolCalls[0].ID != wantAcc.Choices[0].Message.ToolCalls[0].ID ||
				acc.Choices[0].FinishReason != "tool_calls" {
				t.Errorf("streamed call %+v, direct %+v", acc.Choices[0], wantAcc.Choices[0])
			}
		})
	}
}

func accumulate(t *testing.T, c openai.Client, p openai.ChatCompletionNewParams) openai.ChatCompletionAccumulator {
	t.Helper()
	st := c.Chat.Completions.NewStreaming(context.Background(), p)
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if st.Err() != nil {
		t.Fatal(st.Err())
	}
	return acc
}

// Images reach a backend that reads them, reasoning and refusals reach the
// client, streamed and not.
func TestImagesReasoningRefusal(t *testing.T) {
	e, ts := toolGateway(t, "openai")
	ctx := context.Background()
	img := openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,iVBORw0KGgo=", Detail: "low"})
	params := openai.ChatCompletionNewParams{Model: "tool-model", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.TextContentPart("What is this?"), img})},
		ReasoningEffort: shared.ReasoningEffortLow}
	a, err := e.client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ts.Last()), `"image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}`) {
		t.Errorf("the backend got %s", ts.Last())
	}
	if a.Choices[0].Message.Content != "ok: What is this?[image]" || a.Choices[0].Message.JSON.ExtraFields["reasoning_content"].Raw() != `"thinking (low) about it"` {
		t.Errorf("answer %s", a.RawJSON())
	}
	var reasoning string
	st := e.client.Chat.Completions.NewStreaming(ctx, params)
	for st.Next() {
		if c := st.Current(); len(c.Choices) > 0 {
			var r string
			_ = json.Unmarshal([]byte(c.Choices[0].Delta.JSON.ExtraFields["reasoning_content"].Raw()), &r)
			reasoning += r
		}
	}
	if st.Err() != nil || reasoning != "thinking (low) about it" {
		t.Errorf("streamed reasoning %q (%v)", reasoning, st.Err())
	}
	params = openai.ChatCompletionNewParams{Model: "tool-model", Messages: userMsg("please refuse")}
	a, err = e.client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if a.Choices[0].Message.Refusal != "I can't help with that." || a.Choices[0].Message.JSON.Content.Raw() != "null" {
		t.Errorf("refusal %s", a.RawJSON())
	}
	acc := accumulate(t, e.client, params)
	if acc.Choices[0].Message.Refusal != "I can't help with that." {
		t.Errorf("streamed refusal %+v", acc.Choices[0].Message)
	}
}

// Best-of-N weighs tool calls: the rules reward's tool_calls objective
// checks the named tool exists and the arguments follow its schema, and
// the valid call wins; self-consistency votes on calls.
func TestSteeringOverToolCalls(t *testing.T) {
	e, _ := toolGateway(t, "vllm")
	ctx := context.Background()
	// Seeds 4, 5, 6: arguments of the wrong type, not JSON, valid.
	params := openai.ChatCompletionNewParams{Model: "tool-model", Seed: openai.Int(4),
		Messages: userMsg("Weather in Paris?"), Tools: []openai.ChatCompletionToolUnionParam{weatherTool}}
	var resp *http.Response
	a, err := e.client.Chat.Completions.New(ctx, params, option.WithJSONSet("steering", map[string]any{"strategy": "best_of_n", "n": 3}),
		option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Choices[0].Message.ToolCalls; len(got) != 1 || got[0].Function.Arguments != `{"city":"Paris","unit":"celsius"}` ||
		a.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("chose %+v", a.Choices[0])
	}
	var s struct {
		Candidates []struct {
			Objectives map[string]float64 `json:"objectives"`
			Chosen     bool               `json:"chosen"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(a.JSON.ExtraFields["steering"].Raw()), &s); err != nil {
		t.Fatal(err)
	}
	valid := 0
	for _, c := range s.Candidates {
		valid += int(c.Objectives["tool_calls"])
	}
	if len(s.Candidates) != 3 || valid != 1 {
		t.Errorf("candidates %+v", s.Candidates)
	}
	acc := accumulate(t, e.client, params) // without steering: the seed's own (invalid) call
	if acc.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"city":42}` {
		t.Errorf("passthrough call %+v", acc.Choices[0].Message.ToolCalls)
	}
	// Self-consistency: seeds 6..11 give each kind of call twice; the two
	// valid calls (6 and 9) vote with the two ill-typed ones (7, 10)...
	sc, err := e.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "tool-model", Seed: openai.Int(6),
		Messages: userMsg("Weather?"), Tools: []openai.ChatCompletionToolUnionParam{weatherTool}},
		option.WithJSONSet("steering", map[string]any{"strategy": "self_consistency", "n": 7, "extract": "tool_call"}))
	if err != nil {
		t.Fatal(err)
	}
	// ...and the seventh sample (12) breaks the tie for the valid call.
	if got := sc.Choices[0].Message.ToolCalls; len(got) != 1 || got[0].Function.Arguments != `{"city":"Paris","unit":"celsius"}` {
		t.Errorf("self-consistency chose %+v: %s", got, sc.JSON.ExtraFields["steering"].Raw())
	}
}

// A steered stream, and a cached one replayed, are chunks the gateway
// writes; they carry the backend's system_fingerprint and its other
// top-level fields as its own chunks do.
func TestSteeredChunksKeepTheBackendsFields(t *testing.T) {
	e, _ := toolGateway(t, "openai")
	for _, steer := range []map[string]any{{"strategy": "best_of_n", "n": 2}, {"strategy": "none", "cache": map[string]any{"mode": "on"}}} {
		for round := range 2 { // the second of a cached request is a hit
			params := openai.ChatCompletionNewParams{Model: "tool-model", Seed: openai.Int(5), Messages: userMsg("hello"),
				StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
			st := e.client.Chat.Completions.NewStreaming(context.Background(), params, option.WithJSONSet("steering", steer))
			n, usage := 0, 0
			for st.Next() {
				c := st.Current()
				n++
				if c.ServiceTier != "default" || c.JSON.SystemFingerprint.Raw() != `"fp_tool"` {
					t.Errorf("%v: chunk %s", steer, c.RawJSON())
				}
				if len(c.Choices) > 0 {
					continue
				}
				// The usage chunk keeps the usage details, summed over a
				// steered answer's calls; a hit spent nothing.
				usage++
				hit := round == 1 && steer["strategy"] == "none"
				if details := c.Usage.PromptTokensDetails.JSON.CachedTokens.Valid(); details == hit || hit != (c.Usage.TotalTokens == 0) {
					t.Errorf("%v, round %d: usage chunk %s", steer, round, c.RawJSON())
				}
			}
			if st.Err() != nil || n < 2 || usage != 1 {
				t.Errorf("%v: %d chunks, %d usage chunks, %v", steer, n, usage, st.Err())
			}
		}
	}
}
