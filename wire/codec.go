package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// knownFields returns the JSON names of t's fields, computed once per type.
var knownCache sync.Map // reflect.Type -> map[string]bool

func knownFields(t reflect.Type) map[string]bool {
	if v, ok := knownCache.Load(t); ok {
		return v.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	knownCache.Store(t, m)
	return m
}

// decode fills v (a pointer to a request struct) from body and returns the
// fields it does not know, untouched. Errors name the offending field.
func decode(body []byte, v any) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fault.Invalid("", "request body is empty; expected a JSON object")
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, fault.Invalid("", "request body is not a valid JSON object: %v", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fault.Invalid(te.Field, "invalid type for '%s': expected %s, got %s", te.Field, te.Type, te.Value)
		}
		return nil, fault.Invalid("", "invalid request body: %v", err)
	}
	known := knownFields(reflect.TypeOf(v).Elem())
	var extra map[string]json.RawMessage
	for k, raw := range all {
		if !known[k] {
			if extra == nil {
				extra = map[string]json.RawMessage{}
			}
			extra[k] = raw
		}
	}
	return extra, nil
}

// DecodeChat parses a chat completions request body.
func DecodeChat(body []byte) (*ChatRequest, error) {
	var r ChatRequest
	extra, err := decode(body, &r)
	if err != nil {
		return nil, err
	}
	r.Extra = extra
	return &r, nil
}

// DecodeCompletion parses a completions request body.
func DecodeCompletion(body []byte) (*CompletionRequest, error) {
	var r CompletionRequest
	extra, err := decode(body, &r)
	if err != nil {
		return nil, err
	}
	r.Extra = extra
	return &r, nil
}

// Marshal encodes a request struct and appends its Extra fields, so that
// fields Steergate does not interpret reach the backend untouched.
func Marshal(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	known := knownFields(reflect.TypeOf(v).Elem())
	b = b[:len(b)-1] // drop '}'
	for k, raw := range extra {
		if known[k] {
			continue // a known field always wins over a stray copy
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, raw...)
	}
	return append(b, '}'), nil
}

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

func checkSampling(l Limits, n, maxTokens *int, temp, topP *float64, stop []string) error {
	if n != nil && (*n < 1 || *n > l.MaxN) {
		return fault.Invalid("n", "n must be between 1 and %d", l.MaxN)
	}
	if maxTokens != nil {
		if *maxTokens < 1 {
			return fault.Invalid("max_tokens", "max_tokens must be at least 1")
		}
		if l.MaxTokens > 0 && *maxTokens > l.MaxTokens {
			return fault.Invalid("max_tokens", "max_tokens must be at most %d", l.MaxTokens)
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
	if err := checkSampling(l, r.N, maxTokens, r.Temperature, r.TopP, r.Stop); err != nil {
		if fault.Param(err) == "max_tokens" {
			err.(*fault.ParamError).Param = param
		}
		return nil, err
	}
	if r.TopLogprobs != nil {
		if *r.TopLogprobs < 0 || *r.TopLogprobs > l.MaxTopLogprobs {
			return nil, fault.Invalid("top_logprobs", "top_logprobs must be between 0 and %d", l.MaxTopLogprobs)
		}
		if *r.TopLogprobs > 0 && !r.Logprobs {
			return nil, fault.Invalid("top_logprobs", "top_logprobs requires logprobs to be true")
		}
	}
	msgs := make([]backend.Message, len(r.Messages))
	for i, m := range r.Messages {
		if !roles[m.Role] {
			return nil, fault.Invalid(fmt.Sprintf("messages[%d].role", i), "invalid role %q", m.Role)
		}
		msgs[i] = backend.Message{Role: m.Role, Content: string(m.Content), Name: m.Name}
	}
	cont := r.ContinueFinalMessage
	if cont && msgs[len(msgs)-1].Role != "assistant" {
		return nil, fault.Invalid("continue_final_message", "continue_final_message needs a final assistant message")
	}
	if cont && r.AddGenerationPrompt != nil && *r.AddGenerationPrompt {
		return nil, fault.Invalid("add_generation_prompt", "cannot set both continue_final_message and add_generation_prompt")
	}
	return &backend.Request{
		Model: r.Model, Messages: msgs, Continue: cont,
		N: deref(r.N), MaxTokens: deref(maxTokens), Temperature: r.Temperature, TopP: r.TopP,
		Seed: r.Seed, Stop: r.Stop, Logprobs: r.Logprobs, TopLogprobs: deref(r.TopLogprobs),
		User: r.User, Extra: r.Extra,
	}, nil
}

// CompletionToBackend validates a completions request and converts it.
func CompletionToBackend(r *CompletionRequest, l Limits) (*backend.Request, error) {
	if r.Model == "" {
		return nil, fault.Invalid("model", "model is required")
	}
	if len(r.Prompt) != 1 {
		return nil, fault.Invalid("prompt", "prompt must be one string")
	}
	if r.Echo {
		return nil, fault.Unsupported("echo", "echo is not supported")
	}
	if err := checkSampling(l, r.N, r.MaxTokens, r.Temperature, r.TopP, r.Stop); err != nil {
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
