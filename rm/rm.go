package rm

import (
	"context"
	"errors"

	"github.com/steergate/steergate/backend"
)

// Sample is one (prompt, response) pair to score.
type Sample struct {
	Messages []backend.Message `json:"messages,omitempty"` // the conversation the response answers
	Prompt   string            `json:"prompt,omitempty"`   // or a raw prompt
	Response string            `json:"response"`
	// WantJSON is true when the request asked for a JSON answer
	// (response_format json_object or json_schema).
	WantJSON bool `json:"want_json,omitempty"`
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

// TokenRewarder is an autoregressive reward model: the log-probability of
// each candidate next piece of text after the conversation and the partial
// response.
type TokenRewarder interface {
	LogProbs(ctx context.Context, prefix []backend.Message, partial string, next []string) ([]float32, error)
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

// ErrReward is wrapped by errors of reward models, so strategies can tell a
// failing reward from a failing backend.
var ErrReward = errors.New("reward model failure")

// Index returns the position of each objective name.
func Index(objectives []string) map[string]int {
	m := make(map[string]int, len(objectives))
	for i, o := range objectives {
		m[o] = i
	}
	return m
}
