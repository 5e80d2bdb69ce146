package backend

import (
	"context"
	"encoding/json"
)

// Backend is one LLM server (or the embedded reference model).
type Backend interface {
	Name() string
	Caps() Caps
	// Generate runs the request to completion.
	Generate(ctx context.Context, r *Request) (*Generation, error)
	// Stream runs the request and calls emit for every piece of text as it
	// arrives; it returns the same Generation that Generate would.
	Stream(ctx context.Context, r *Request, emit func(Delta) error) (*Generation, error)
}

// Lister is implemented by backends that can report the models they serve.
type Lister interface {
	Models(ctx context.Context) ([]string, error)
}

// Scorer is implemented by backends that can return the log-probability of a
// given text (the response) after a given context (Caps.Scoring).
type Scorer interface {
	ScoreText(ctx context.Context, r *Request, text string) (*Score, error)
}

// Score is the log-probability of a text under a backend's model.
type Score struct {
	Logprob float64 // sum over the text's tokens
	Tokens  int
}

// Caps declares what a backend can do, so that the config loader and the
// strategies check capabilities up front rather than by a failing request.
type Caps struct {
	Logprobs       bool // per-token logprobs of generated text
	MaxTopLogprobs int  // largest top_logprobs accepted
	Continuation   bool // continues a trailing partial assistant message
	NativeN        bool // n > 1 in one call
	Scoring        bool // logprobs of a given text (implements Scorer)
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	Name    string `json:"name,omitempty"`
}

// Request is a generation request in OpenAI terms. Exactly one of Messages
// (chat) and Prompt (raw completion) is set.
type Request struct {
	Model    string // the backend's own model name
	Messages []Message
	Prompt   string
	// Continue means the last message is a partial assistant message that the
	// model must continue rather than answer.
	Continue bool

	N           int // 0 or 1: one choice
	MaxTokens   int // 0: the backend's default
	Temperature *float64
	TopP        *float64
	Seed        *int64
	Stop        []string
	Logprobs    bool
	TopLogprobs int
	User        string
	// Extra holds request fields Steergate does not interpret; adapters pass
	// them through to backends that understand them.
	Extra map[string]json.RawMessage
}

// Clone returns a copy whose slices and maps may be modified freely.
func (r *Request) Clone() *Request {
	c := *r
	c.Messages = append([]Message(nil), r.Messages...)
	c.Stop = append([]string(nil), r.Stop...)
	if r.Extra != nil {
		c.Extra = make(map[string]json.RawMessage, len(r.Extra))
		for k, v := range r.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}

// Choices returns how many choices the request asks for.
func (r *Request) Choices() int {
	if r.N < 1 {
		return 1
	}
	return r.N
}

// TopLogprob is one alternative at a position.
type TopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

// TokenLogprob is the logprob of one generated token and its alternatives.
type TokenLogprob struct {
	Token   string       `json:"token"`
	Logprob float64      `json:"logprob"`
	Top     []TopLogprob `json:"top_logprobs,omitempty"`
}

// Finish reasons, as OpenAI names them.
const (
	FinishStop   = "stop"
	FinishLength = "length"
)

// Choice is one generated answer.
type Choice struct {
	Index        int
	Text         string
	FinishReason string
	Logprobs     []TokenLogprob // nil unless requested
	Tokens       int            // completion tokens of this choice
}

// Usage is what the backend really spent.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// Add accumulates u2 into u.
func (u *Usage) Add(u2 Usage) {
	u.PromptTokens += u2.PromptTokens
	u.CompletionTokens += u2.CompletionTokens
}

// Generation is a finished generation.
type Generation struct {
	Model   string
	Choices []Choice
	Usage   Usage
}

// Delta is one streamed piece of a choice. The last delta of a choice carries
// its FinishReason.
type Delta struct {
	Index        int
	Text         string
	Logprobs     []TokenLogprob
	FinishReason string
}
