package rm

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// Sample is one (prompt, response) pair to score.
type Sample struct {
	Messages []backend.Message `json:"messages,omitempty"` // the conversation the response answers
	Prompt   string            `json:"prompt,omitempty"`   // or a raw prompt
	Response string            `json:"response"`
	// WantJSON is true when the request asked for a JSON answer
	// (response_format json_object or json_schema).
	WantJSON bool `json:"want_json,omitempty"`
	// Tools are the request's tools, and Text and Calls the answer's text
	// and tool calls apart (Response renders both), for objectives that
	// check tool calls and JSON. Score cache keys hold them too (Cached).
	Tools []backend.Tool     `json:"tools,omitempty"`
	Text  string             `json:"-"`
	Calls []backend.ToolCall `json:"-"`
	// Schema is the JSON schema the request's response_format asked for.
	Schema json.RawMessage `json:"schema,omitempty"`
	// Partial marks a prefix of an answer (a step of a step-wise
	// strategy), not a whole one; Steps are its steps so far when the
	// strategy splits it.
	Partial bool     `json:"partial,omitempty"`
	Steps   []string `json:"steps,omitempty"`
	// Scope keeps running statistics apart (the route); it is not part of
	// what is scored.
	Scope string `json:"-"`
}

// Render is an answer as rewards read it: its text, then each tool call
// as a JSON object {"name": ..., "arguments": ...} on a line of its own.
// Reasoning is not part of it.
func Render(c backend.Choice) string {
	if len(c.ToolCalls) == 0 {
		return c.Text
	}
	var b strings.Builder
	b.WriteString(c.Text)
	for _, tc := range c.ToolCalls {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		args := json.RawMessage(tc.Arguments)
		if !json.Valid(args) {
			q, _ := json.Marshal(tc.Arguments)
			args = q
		}
		line, _ := json.Marshal(struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}{tc.Name, args})
		b.Write(line)
	}
	return b.String()
}

// CheckShape verifies a reward's answer: one row per sample, one column
// per objective. A reward that breaks it fails the request with a reward
// error instead of a panic.
func CheckShape(scores [][]float32, samples, objectives int) error {
	if len(scores) != samples {
		return fmt.Errorf("%w: %d rows of scores for %d samples", fault.ErrReward, len(scores), samples)
	}
	for i, row := range scores {
		if len(row) != objectives {
			return fmt.Errorf("%w: row %d has %d scores for %d objectives", fault.ErrReward, i, len(row), objectives)
		}
	}
	return nil
}

// PromptText is the prompt as plain text: the raw prompt, or the last user
// message of a conversation.
func (s Sample) PromptText() string {
	if s.Messages == nil {
		return s.Prompt
	}
	for i := len(s.Messages) - 1; i >= 0; i-- {
		if s.Messages[i].Role == "user" {
			return s.Messages[i].Content
		}
	}
	return ""
}

// Rewarder scores samples: one vector of objective scores per sample, in
// the order of Objectives.
type Rewarder interface {
	Objectives() []string
	Score(ctx context.Context, s []Sample) ([][]float32, error)
}

// TokenRewarder scores candidate next pieces of text of a partial answer
// (the sample's Response, which may be empty): a log-probability (an
// autoregressive reward model), a value, or a bonus per candidate, each a
// number whose differences between candidates matter. The empty candidate
// stands for the end of the answer.
type TokenRewarder interface {
	LogProbs(ctx context.Context, s Sample, next []string) ([]float32, error)
}

// Identified rewarders name their model and version, so that caches never
// mix scores of different models.
type Identified interface {
	ID() string
}

// IDOf returns r's identity, or "" when it has none.
func IDOf(r Rewarder) string {
	if id, ok := r.(Identified); ok {
		return id.ID()
	}
	return ""
}

// As finds a T among r and the rewards it wraps (a cache, shaping): what
// a reward is (an ensemble, a gated model) survives wrapping.
func As[T any](r Rewarder) (T, bool) {
	for r != nil {
		if t, ok := r.(T); ok {
			return t, true
		}
		w, ok := r.(interface{ Unwrap() Rewarder })
		if !ok {
			break
		}
		r = w.Unwrap()
	}
	var zero T
	return zero, false
}

// Index returns the position of each objective name.
func Index(objectives []string) map[string]int {
	m := make(map[string]int, len(objectives))
	for i, o := range objectives {
		m[o] = i
	}
	return m
}
