package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/steergate/steergate/fault"
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

// RawRequest is a request an OpenAI-compatible backend can take as the
// client wrote it: Body with Model set (each backend's own name) and the
// members in Drop removed, everything else as sent.
type RawRequest struct {
	Chat   bool     // /chat/completions, else /completions
	Body   []byte   // the client's body
	Drop   []string // top-level members the backend must not see (steering)
	Stream bool
	Req    *Request // the decoded request, for checks and the model name
}

// RawAnswer is a backend's answer to relay as it came: a whole body, or an
// event stream to copy until it ends; Close releases it. Before Close, the
// relay sets Err to why a stream ended early, if it did: the call's outcome.
type RawAnswer struct {
	Body   []byte
	Stream io.Reader
	Close  func()
	Err    error
}

// RawProxy is a backend that speaks the OpenAI wire format itself, so that
// a request the gateway does not steer can cross as bytes: no decoding and
// encoding of what the gateway does not change. RawOK says whether r needs
// nothing the adapter would translate.
type RawProxy interface {
	RawOK(r *Request) bool
	Raw(ctx context.Context, r *RawRequest) (*RawAnswer, error)
}

// Score is the log-probability of a text under a backend's model.
type Score struct {
	Logprob float64 // sum over the text's tokens
	Tokens  int     // the text's tokens
	Usage   Usage   // what the scoring call spent
}

func unsupportedScoring(name string) error {
	return fault.Unsupported("", "backend %s cannot score given text", name)
}

// Caps declares what a backend can do, so that the config loader and the
// strategies check capabilities up front rather than by a failing request.
type Caps struct {
	Logprobs       bool // per-token logprobs of generated text
	MaxTopLogprobs int  // largest top_logprobs accepted
	Continuation   bool // continues a trailing partial assistant message
	NativeN        bool // n > 1 in one call
	Scoring        bool // logprobs of a given text (implements Scorer)
	ScoringChat    bool // ... after chat messages, not only a raw prompt
	Tools          bool // tools, tool_choice, tool calls and tool results
	Images         bool // image_url content parts
	Audio          bool // input_audio content parts
	Files          bool // file content parts
	AnyParts       bool // content parts of any other type, passed on as sent
	JSON           bool // response_format json_object and json_schema
	Reasoning      bool // reasoning_effort
	StopSequence   bool // says which stop sequence ended a choice (Choice.StopSequence)
}

// And is what both c and o can do.
func (c Caps) And(o Caps) Caps {
	return Caps{Logprobs: c.Logprobs && o.Logprobs, MaxTopLogprobs: min(c.MaxTopLogprobs, o.MaxTopLogprobs),
		Continuation: c.Continuation && o.Continuation, NativeN: c.NativeN && o.NativeN, Scoring: c.Scoring && o.Scoring, ScoringChat: c.ScoringChat && o.ScoringChat,
		Tools: c.Tools && o.Tools, Images: c.Images && o.Images, Audio: c.Audio && o.Audio, Files: c.Files && o.Files,
		AnyParts: c.AnyParts && o.AnyParts, JSON: c.JSON && o.JSON, Reasoning: c.Reasoning && o.Reasoning, StopSequence: c.StopSequence && o.StopSequence}
}

// Check refuses, by name, every field of r that a backend with these
// capabilities cannot serve.
func (c Caps) Check(r *Request) error {
	if r.Logprobs && !c.Logprobs {
		return fault.Unsupported("logprobs", "this model's backend does not return logprobs")
	}
	if r.TopLogprobs > c.MaxTopLogprobs && c.Logprobs {
		return fault.Invalid("top_logprobs", "top_logprobs must be at most %d for this model", c.MaxTopLogprobs)
	}
	if r.Continue && !c.Continuation {
		return fault.Unsupported("continue_final_message", "this model's backend cannot continue a partial assistant message")
	}
	if !c.Tools {
		switch {
		case len(r.Tools) > 0:
			return fault.Unsupported("tools", "this model's backend cannot call tools")
		case len(r.ToolChoice) > 0:
			return fault.Unsupported("tool_choice", "this model's backend cannot call tools")
		case r.ParallelToolCalls != nil:
			return fault.Unsupported("parallel_tool_calls", "this model's backend cannot call tools")
		}
	}
	if rf := r.ResponseFormat; rf != nil && rf.Type != "text" && !c.JSON {
		return fault.Unsupported("response_format", "this model's backend cannot constrain its answer to JSON")
	}
	if r.ReasoningEffort != "" && !c.Reasoning {
		return fault.Unsupported("reasoning_effort", "this model's backend has no reasoning effort to set")
	}
	for i, m := range r.Messages {
		if !c.Tools && len(m.ToolCalls) > 0 {
			return fault.Unsupported(fmt.Sprintf("messages[%d].tool_calls", i), "this model's backend cannot read tool calls")
		}
		if !c.Tools && m.Role == "tool" {
			return fault.Unsupported(fmt.Sprintf("messages[%d].role", i), "this model's backend cannot read tool results")
		}
		for j, p := range m.Parts {
			ok := true
			switch p.Type {
			case "text", "refusal":
			case "image_url":
				ok = c.Images
			case "input_audio":
				ok = c.Audio
			case "file":
				ok = c.Files
			default:
				ok = c.AnyParts
			}
			if !ok {
				return fault.Unsupported(fmt.Sprintf("messages[%d].content[%d]", i, j), "this model's backend cannot read %q content parts", p.Type)
			}
		}
	}
	return nil
}

// Message is one chat message, with every field the OpenAI API defines.
type Message struct {
	Role string `json:"role"`
	// Content is the message's text: the string, or its text parts joined.
	Content string `json:"content"`
	// Parts holds content given as an array of parts, each as sent (text,
	// image_url, input_audio, file, …); nil when content was a string.
	Parts      []Part     `json:"parts,omitempty"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`   // an assistant's calls
	ToolCallID string     `json:"tool_call_id,omitempty"` // a tool message answers this call
	Refusal    string     `json:"refusal,omitempty"`
	Reasoning  string     `json:"reasoning,omitempty"` // an assistant's reasoning_content, sent back
	// Raw is the message as the client sent it, every field included;
	// adapters that speak OpenAI's wire send it unchanged. Code that
	// changes a message must clear it.
	Raw json.RawMessage `json:"-"`
}

// Part is one content part. Raw is the part as the client sent it.
type Part struct {
	Type     string          `json:"type"`
	Text     string          `json:"text,omitempty"`
	ImageURL string          `json:"image_url,omitempty"` // image_url parts: the URL or data URL
	Raw      json.RawMessage `json:"raw,omitempty"`
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
	// Tools the model may call, and how (tool_choice, parallel_tool_calls).
	Tools             []Tool
	ToolChoice        json.RawMessage
	ParallelToolCalls *bool
	// ResponseFormat asks for JSON (json_object) or JSON following a
	// schema (json_schema).
	ResponseFormat *ResponseFormat
	// ReasoningEffort asks a reasoning model to think less or more.
	ReasoningEffort string
	// Extra holds request fields Steergate does not interpret; adapters pass
	// them through to backends that understand them.
	Extra map[string]json.RawMessage
}

// Tool is a function the model may call. Raw keeps the definition as the
// client sent it, so that OpenAI-compatible backends get it unchanged.
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"` // a JSON schema
	Strict      *bool           `json:"strict,omitempty"`
	Raw         json.RawMessage `json:"-"`
}

// ResponseFormat is the request's response_format; Raw keeps it as sent.
type ResponseFormat struct {
	Type       string          `json:"type"` // text, json_object, json_schema
	SchemaName string          `json:"name,omitempty"`
	Schema     json.RawMessage `json:"schema,omitempty"`
	Strict     *bool           `json:"strict,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

// Clone returns a copy whose slices and maps may be modified freely.
func (r *Request) Clone() *Request {
	c := *r
	c.Messages = append([]Message(nil), r.Messages...)
	c.Stop = append([]string(nil), r.Stop...)
	c.Tools = append([]Tool(nil), r.Tools...)
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
	FinishStop      = "stop"
	FinishLength    = "length"
	FinishToolCalls = "tool_calls"
)

// ToolCall is a function call an assistant message makes. In a streamed
// Delta it is a fragment: Index says which call it extends, and Arguments
// is the next piece of the argument text.
type ToolCall struct {
	Index     int    `json:"index"`
	ID        string `json:"id,omitempty"`
	Type      string `json:"type,omitempty"` // "function"
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Choice is one generated answer.
type Choice struct {
	Index        int
	Text         string
	Reasoning    string     `json:",omitempty"` // reasoning output (reasoning_content), apart from the answer
	Refusal      string     `json:",omitempty"`
	ToolCalls    []ToolCall `json:",omitempty"`
	FinishReason string
	// StopSequence is the stop sequence that ended the choice ("" for the
	// end of the answer or a stop token), where the backend says; nil
	// where it does not (see Caps.StopSequence).
	StopSequence *string        `json:",omitempty"`
	Logprobs     []TokenLogprob // nil unless requested
	Tokens       int            // completion tokens of this choice
	// Extra holds fields of the backend's message this package does not
	// interpret, so that they reach the client.
	Extra map[string]json.RawMessage `json:",omitempty"`
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
	Model             string
	Choices           []Choice
	Usage             Usage
	SystemFingerprint string `json:",omitempty"`
	// Extra holds top-level answer fields this package does not interpret,
	// and UsageExtra the usage details (prompt_tokens_details, …), so that
	// they reach the client.
	Extra      map[string]json.RawMessage `json:",omitempty"`
	UsageExtra map[string]json.RawMessage `json:",omitempty"`
}

// CountTokens fills in the choices' Tokens a backend did not count, where
// the answer says: a lone choice's are the usage's completion tokens;
// one among several with logprobs has a logprob a token. Others stay 0,
// unknown.
func (g *Generation) CountTokens() {
	for i := range g.Choices {
		c := &g.Choices[i]
		switch {
		case c.Tokens > 0:
		case len(g.Choices) == 1:
			c.Tokens = g.Usage.CompletionTokens
		default:
			c.Tokens = len(c.Logprobs)
		}
	}
}

// Delta is one streamed piece of a choice. The last delta of a choice carries
// its FinishReason.
type Delta struct {
	Index        int
	Text         string
	Reasoning    string
	Refusal      string
	ToolCalls    []ToolCall // fragments, by ToolCall.Index
	Logprobs     []TokenLogprob
	FinishReason string
	// Fingerprint is the backend's system_fingerprint, where it said one
	// with this piece, and Extra the chunk's top-level fields this package
	// does not interpret (service_tier, …), for the chunk that carries the
	// piece on.
	Fingerprint string                     `json:",omitempty"`
	Extra       map[string]json.RawMessage `json:",omitempty"`
}

// Spelled is a token as its bytes spell it. Servers send a token that ends
// inside a UTF-8 character as text with a replacement character and its
// exact bytes beside it; the bytes win.
func Spelled(token string, bs []int) string {
	if len(bs) == 0 {
		return token
	}
	b := make([]byte, len(bs))
	for i, x := range bs {
		b[i] = byte(x)
	}
	return string(b)
}
