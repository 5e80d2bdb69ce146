package wire

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// Limits bound what one request may ask for.
type Limits struct {
	MaxN           int // largest n
	MaxTokens      int // largest max_tokens; 0: unbounded
	MaxMessages    int // 0: unbounded
	MaxStop        int
	MaxTopLogprobs int
}

// DefaultLimits are OpenAI's own bounds.
var DefaultLimits = Limits{MaxN: 128, MaxStop: 4, MaxTopLogprobs: 20}

// checkSampling checks what chat and completion requests share; tokens
// names the member maxTokens came from (max_tokens, max_completion_tokens).
func checkSampling(l Limits, n, maxTokens *int, tokens string, temp, topP *float64, stop []string) error {
	if n != nil && (*n < 1 || *n > l.MaxN) {
		return fault.Invalid("n", "n must be between 1 and %d", l.MaxN)
	}
	if maxTokens != nil {
		if *maxTokens < 1 {
			return fault.Invalid(tokens, "%s must be at least 1", tokens)
		}
		if l.MaxTokens > 0 && *maxTokens > l.MaxTokens {
			return fault.Invalid(tokens, "%s must be at most %d", tokens, l.MaxTokens)
		}
	}
	if temp != nil && (*temp < 0 || *temp > 2) {
		return fault.Invalid("temperature", "temperature must be between 0 and 2")
	}
	if topP != nil && (*topP <= 0 || *topP > 1) {
		return fault.Invalid("top_p", "top_p must be greater than 0 and at most 1")
	}
	if len(stop) > l.MaxStop {
		return fault.Invalid("stop", "at most %d stop sequences are allowed", l.MaxStop)
	}
	return nil
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

var roles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

// ChatToBackend validates a chat request and converts it.
func ChatToBackend(r *ChatRequest, l Limits) (*backend.Request, error) {
	if r.Model == "" {
		return nil, fault.Invalid("model", "model is required")
	}
	if len(r.Messages) == 0 {
		return nil, fault.Invalid("messages", "messages must be a non-empty array")
	}
	if l.MaxMessages > 0 && len(r.Messages) > l.MaxMessages {
		return nil, fault.Invalid("messages", "at most %d messages are allowed", l.MaxMessages)
	}
	maxTokens := r.MaxCompletionTokens
	param := "max_completion_tokens"
	if maxTokens == nil {
		maxTokens, param = r.MaxTokens, "max_tokens"
	}
	if err := checkSampling(l, r.N, maxTokens, param, r.Temperature, r.TopP, r.Stop); err != nil {
		return nil, err
	}
	if r.StreamOptions != nil && !r.Stream {
		return nil, fault.Invalid("stream_options", "stream_options is only allowed when stream is true")
	}
	if r.TopLogprobs != nil {
		if *r.TopLogprobs < 0 || *r.TopLogprobs > l.MaxTopLogprobs {
			return nil, fault.Invalid("top_logprobs", "top_logprobs must be between 0 and %d", l.MaxTopLogprobs)
		}
		if *r.TopLogprobs > 0 && !r.Logprobs {
			return nil, fault.Invalid("top_logprobs", "top_logprobs requires logprobs to be true")
		}
	}
	tools, err := toolsOf(r.Tools)
	if err != nil {
		return nil, err
	}
	if err := checkToolChoice(r.ToolChoice, tools); err != nil {
		return nil, err
	}
	rf, err := responseFormatOf(r.ResponseFormat)
	if err != nil {
		return nil, err
	}
	msgs := make([]backend.Message, len(r.Messages))
	for i, m := range r.Messages {
		bm, err := messageOf(i, m)
		if err != nil {
			return nil, err
		}
		msgs[i] = bm
	}
	cont := r.ContinueFinalMessage
	if cont && msgs[len(msgs)-1].Role != "assistant" {
		return nil, fault.Invalid("continue_final_message", "continue_final_message needs a final assistant message")
	}
	if cont && r.AddGenerationPrompt != nil && *r.AddGenerationPrompt {
		return nil, fault.Invalid("add_generation_prompt", "cannot set both continue_final_message and add_generation_prompt")
	}
	extra := r.Extra
	if r.AddGenerationPrompt != nil && !cont {
		// Not a continuation: a vLLM template flag the gateway passes on.
		extra = withExtra(extra, "add_generation_prompt", *r.AddGenerationPrompt)
	}
	return &backend.Request{
		Model: r.Model, Messages: msgs, Continue: cont,
		N: deref(r.N), MaxTokens: deref(maxTokens), Temperature: r.Temperature, TopP: r.TopP,
		Seed: r.Seed, Stop: r.Stop, Logprobs: r.Logprobs, TopLogprobs: deref(r.TopLogprobs),
		User: r.User, Tools: tools, ToolChoice: r.ToolChoice, ParallelToolCalls: r.ParallelToolCalls,
		ResponseFormat: rf, ReasoningEffort: r.ReasoningEffort, Extra: extra,
	}, nil
}

func withExtra(extra map[string]json.RawMessage, k string, v any) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(extra)+1)
	for key, raw := range extra {
		out[key] = raw
	}
	out[k], _ = json.Marshal(v)
	return out
}

// messageOf validates one message the way OpenAI does and converts it.
func messageOf(i int, m Message) (backend.Message, error) {
	at := func(field string) string { return fmt.Sprintf("messages[%d].%s", i, field) }
	if !roles[m.Role] {
		return backend.Message{}, fault.Invalid(at("role"), "invalid role %q: use system, developer, user, assistant or tool", fault.Clip(m.Role, 64))
	}
	switch {
	case m.Role == "tool" && m.ToolCallID == "":
		return backend.Message{}, fault.Invalid(at("tool_call_id"), "a tool message needs the tool_call_id it answers")
	case m.Role != "tool" && m.ToolCallID != "":
		return backend.Message{}, fault.Invalid(at("tool_call_id"), "only tool messages carry tool_call_id")
	case m.Role != "assistant" && len(m.ToolCalls) > 0:
		return backend.Message{}, fault.Invalid(at("tool_calls"), "only assistant messages make tool calls")
	case m.Content.Null && m.Role != "assistant":
		return backend.Message{}, fault.Invalid(at("content"), "a %s message needs content", m.Role)
	case m.Content.Null && len(m.ToolCalls) == 0 && m.Refusal == nil:
		return backend.Message{}, fault.Invalid(at("content"), "an assistant message needs content, tool_calls or a refusal")
	}
	for j, p := range m.Content.Parts {
		if m.Role != "user" && p.Type != "text" && !(m.Role == "assistant" && p.Type == "refusal") {
			return backend.Message{}, fault.Invalid(fmt.Sprintf("messages[%d].content[%d].type", i, j), "%s messages take text parts only, not %q", m.Role, fault.Clip(p.Type, 64))
		}
	}
	out := backend.Message{Role: m.Role, Content: m.Content.Text, Parts: m.Content.Parts, Name: m.Name, ToolCallID: m.ToolCallID, Raw: m.Raw}
	if m.Refusal != nil {
		out.Refusal = *m.Refusal
	}
	if m.ReasoningContent != nil {
		out.Reasoning = *m.ReasoningContent
	}
	for j, tc := range m.ToolCalls {
		if tc.ID == "" || tc.Function.Name == "" || (tc.Type != "" && tc.Type != "function") {
			return backend.Message{}, fault.Invalid(fmt.Sprintf("messages[%d].tool_calls[%d]", i, j), "a tool call needs an id, type function and a function name")
		}
		out.ToolCalls = append(out.ToolCalls, backend.ToolCall{Index: j, ID: tc.ID, Type: "function", Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	return out, nil
}

func toolsOf(ts []Tool) ([]backend.Tool, error) {
	var out []backend.Tool
	seen := map[string]bool{}
	for i, t := range ts {
		at := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return nil, fault.Invalid(at+".type", "tool type must be function, not %q", fault.Clip(t.Type, 64))
		}
		if t.Function.Name == "" {
			return nil, fault.Invalid(at+".function.name", "a function tool needs a name")
		}
		if seen[t.Function.Name] {
			return nil, fault.Invalid(at+".function.name", "tool %q is defined twice", fault.Clip(t.Function.Name, 64))
		}
		seen[t.Function.Name] = true
		if p := bytes.TrimSpace(t.Function.Parameters); len(p) > 0 && p[0] != '{' {
			return nil, fault.Invalid(at+".function.parameters", "parameters must be a JSON schema object")
		}
		out = append(out, backend.Tool{Type: t.Type, Name: t.Function.Name, Description: t.Function.Description,
			Parameters: t.Function.Parameters, Strict: t.Function.Strict, Raw: t.Raw})
	}
	return out, nil
}

// checkToolChoice accepts "none", "auto", "required" or a named function
// that tools defines.
func checkToolChoice(raw json.RawMessage, tools []backend.Tool) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "none", "auto", "required":
			if s == "required" && len(tools) == 0 {
				return fault.Invalid("tool_choice", "tool_choice required needs tools")
			}
			return nil
		}
		return fault.Invalid("tool_choice", "tool_choice must be none, auto, required or a function")
	}
	// Its keys are checked as the request's are (checkKeys): the backend
	// gets it as sent, and must read the name checked here.
	if err := checkKeys(raw, toolChoiceKeys); err != nil {
		return memberError("tool_choice", err)
	}
	var obj toolChoiceObject
	if json.Unmarshal(raw, &obj) != nil || obj.Type != "function" {
		return fault.Invalid("tool_choice", "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")
	}
	if err := checkKeys(obj.Function, toolChoiceFunctionKeys); err != nil {
		return memberError("tool_choice.function", err)
	}
	var fn toolChoiceFunction
	if json.Unmarshal(obj.Function, &fn) != nil || fn.Name == "" {
		return fault.Invalid("tool_choice.function.name", "tool_choice.function.name must name a function of tools")
	}
	for _, t := range tools {
		if t.Name == fn.Name {
			return nil
		}
	}
	return fault.Invalid("tool_choice.function.name", "tool_choice names %q, which tools does not define", fault.Clip(fn.Name, 64))
}

// toolChoiceObject is tool_choice naming a function.
type toolChoiceObject struct {
	Type     string          `json:"type"`
	Function json.RawMessage `json:"function"`
}

type toolChoiceFunction struct {
	Name string `json:"name"`
}

var (
	toolChoiceKeys         = knownKeys(toolChoiceObject{})
	toolChoiceFunctionKeys = knownKeys(toolChoiceFunction{})
)

func responseFormatOf(rf *ResponseFormat) (*backend.ResponseFormat, error) {
	if rf == nil {
		return nil, nil
	}
	out := &backend.ResponseFormat{Type: rf.Type, Raw: rf.Raw}
	switch rf.Type {
	case "text", "json_object":
	case "json_schema":
		if rf.JSONSchema == nil || rf.JSONSchema.Name == "" {
			return nil, fault.Invalid("response_format.json_schema", "json_schema needs a name and a schema")
		}
		if s := bytes.TrimSpace(rf.JSONSchema.Schema); len(s) > 0 && s[0] != '{' {
			return nil, fault.Invalid("response_format.json_schema.schema", "schema must be a JSON schema object")
		}
		out.SchemaName, out.Schema, out.Strict = rf.JSONSchema.Name, rf.JSONSchema.Schema, rf.JSONSchema.Strict
	default:
		return nil, fault.Invalid("response_format.type", "response_format type must be text, json_object or json_schema")
	}
	return out, nil
}

// CompletionToBackend validates a completions request and converts it.
func CompletionToBackend(r *CompletionRequest, l Limits) (*backend.Request, error) {
	if r.Model == "" {
		return nil, fault.Invalid("model", "model is required")
	}
	if len(r.Prompt) == 0 {
		return nil, fault.Invalid("prompt", "prompt must be a string or an array of one string")
	}
	if len(r.Prompt) > 1 {
		// Several prompts are several completions at once, which this
		// gateway does not serve.
		return nil, fault.Unsupported("prompt", "prompt must be one string (or an array of one): a batch of %d prompts is not supported; send one request each", len(r.Prompt))
	}
	if r.Echo {
		return nil, fault.Unsupported("echo", "echo is not supported")
	}
	if r.StreamOptions != nil && !r.Stream {
		return nil, fault.Invalid("stream_options", "stream_options is only allowed when stream is true")
	}
	if err := checkSampling(l, r.N, r.MaxTokens, "max_tokens", r.Temperature, r.TopP, r.Stop); err != nil {
		return nil, err
	}
	top := deref(r.Logprobs)
	if r.Logprobs != nil && (top < 0 || top > 5) {
		return nil, fault.Invalid("logprobs", "logprobs must be between 0 and 5")
	}
	return &backend.Request{
		Model: r.Model, Prompt: r.Prompt[0],
		N: deref(r.N), MaxTokens: deref(r.MaxTokens), Temperature: r.Temperature, TopP: r.TopP,
		Seed: r.Seed, Stop: r.Stop, Logprobs: r.Logprobs != nil, TopLogprobs: top,
		User: r.User, Extra: r.Extra,
	}, nil
}
