package wire

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/steergate/steergate/backend"
)

// Object names.
const (
	ObjectChat       = "chat.completion"
	ObjectChatChunk  = "chat.completion.chunk"
	ObjectCompletion = "text_completion"
)

func bytesOf(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

// ChatLogprobs converts backend logprobs to the chat wire shape; nil stays
// null and an empty list is {"content": []}.
func ChatLogprobs(lps []backend.TokenLogprob) *ChoiceLogprobs {
	if lps == nil {
		return nil
	}
	out := &ChoiceLogprobs{Content: make([]TokenLogprob, len(lps))}
	for i, lp := range lps {
		top := make([]TopLogprob, len(lp.Top))
		for j, t := range lp.Top {
			top[j] = TopLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: bytesOf(t.Token)}
		}
		out.Content[i] = TokenLogprob{Token: lp.Token, Logprob: lp.Logprob, Bytes: bytesOf(lp.Token), TopLogprobs: top}
	}
	return out
}

// BackendLogprobs converts chat wire logprobs to backend logprobs. Where a
// server gives a token's bytes they spell it, so that a token that ends in
// the middle of a UTF-8 character keeps its exact bytes.
func BackendLogprobs(c *ChoiceLogprobs) []backend.TokenLogprob {
	if c == nil {
		return nil
	}
	out := make([]backend.TokenLogprob, len(c.Content))
	for i, lp := range c.Content {
		var top []backend.TopLogprob
		for _, t := range lp.TopLogprobs {
			top = append(top, backend.TopLogprob{Token: backend.Spelled(t.Token, t.Bytes), Logprob: t.Logprob})
		}
		out[i] = backend.TokenLogprob{Token: backend.Spelled(lp.Token, lp.Bytes), Logprob: lp.Logprob, Top: top}
	}
	return out
}

// LegacyLogprobs converts backend logprobs to the completions wire shape;
// offset is where the choice's text starts.
func LegacyLogprobs(lps []backend.TokenLogprob, offset int) *CompletionLogprobs {
	if lps == nil {
		return nil
	}
	out := &CompletionLogprobs{
		Tokens: make([]string, len(lps)), TokenLogprobs: make([]float64, len(lps)),
		TopLogprobs: make([]map[string]float64, len(lps)), TextOffset: make([]int, len(lps)),
	}
	for i, lp := range lps {
		out.Tokens[i], out.TokenLogprobs[i], out.TextOffset[i] = lp.Token, lp.Logprob, offset
		offset += len(lp.Token)
		out.TopLogprobs[i] = make(map[string]float64, len(lp.Top))
		for _, t := range lp.Top {
			out.TopLogprobs[i][t.Token] = t.Logprob
		}
	}
	return out
}

// BackendLegacyLogprobs converts completions wire logprobs to backend ones.
// The legacy shape loses the order of alternatives; they come back sorted by
// logprob.
func BackendLegacyLogprobs(c *CompletionLogprobs) []backend.TokenLogprob {
	if c == nil {
		return nil
	}
	out := make([]backend.TokenLogprob, len(c.Tokens))
	for i, tok := range c.Tokens {
		out[i].Token = tok
		if i < len(c.TokenLogprobs) {
			out[i].Logprob = c.TokenLogprobs[i]
		}
		if i < len(c.TopLogprobs) {
			for t, lp := range c.TopLogprobs[i] {
				out[i].Top = append(out[i].Top, backend.TopLogprob{Token: t, Logprob: lp})
			}
			slices.SortFunc(out[i].Top, func(a, b backend.TopLogprob) int {
				switch {
				case a.Logprob > b.Logprob:
					return -1
				case a.Logprob < b.Logprob:
					return 1
				}
				return strings.Compare(a.Token, b.Token)
			})
		}
	}
	return out
}

func usageOf(u backend.Usage, extra map[string]json.RawMessage) *Usage {
	return &Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens, Extra: extra}
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toolCalls(tcs []backend.ToolCall) []ToolCall {
	if len(tcs) == 0 {
		return nil
	}
	out := make([]ToolCall, len(tcs))
	for i, tc := range tcs {
		out[i] = ToolCall{ID: tc.ID, Type: "function", Function: FunctionCall{Name: tc.Name, Arguments: tc.Arguments}}
	}
	return out
}

// Chat builds a chat completion from a generation: tool calls, refusal,
// reasoning (as reasoning_content), the system fingerprint and every field
// a backend answered that this package does not know.
func Chat(id, model string, created int64, g *backend.Generation) *ChatCompletion {
	out := &ChatCompletion{ID: id, Object: ObjectChat, Created: created, Model: model, SystemFingerprint: g.SystemFingerprint,
		Choices: make([]ChatChoice, len(g.Choices)), Usage: usageOf(g.Usage, g.UsageExtra), Extra: g.Extra}
	for i, c := range g.Choices {
		msg := ResponseMessage{Role: "assistant", Content: &c.Text, Refusal: strPtr(c.Refusal), ToolCalls: toolCalls(c.ToolCalls),
			ReasoningContent: strPtr(c.Reasoning), Extra: c.Extra}
		if c.Text == "" && (len(c.ToolCalls) > 0 || c.Refusal != "") {
			msg.Content = nil // as OpenAI answers a call or a refusal: content null
		}
		out.Choices[i] = ChatChoice{Index: c.Index, Message: msg, Logprobs: ChatLogprobs(c.Logprobs), FinishReason: c.FinishReason, StopReason: StopReason(c.StopSequence)}
	}
	return out
}

// ChatChunkOf builds the chunk for one delta. The first chunk of each choice
// carries the assistant role, as OpenAI's do.
func ChatChunkOf(id, model string, created int64, d backend.Delta, first bool) *ChatChunk {
	cc := ChunkChoice{Index: d.Index, Logprobs: ChatLogprobs(d.Logprobs), Delta: Delta{ReasoningContent: strPtr(d.Reasoning), Refusal: strPtr(d.Refusal)}}
	if first {
		cc.Delta.Role = "assistant"
	}
	if d.Text != "" || (first && d.Reasoning == "" && len(d.ToolCalls) == 0 && d.Refusal == "") {
		t := d.Text
		cc.Delta.Content = &t
	}
	for _, tc := range d.ToolCalls {
		td := ToolCallDelta{Index: tc.Index, ID: tc.ID, Type: tc.Type}
		td.Function.Name, td.Function.Arguments = tc.Name, tc.Arguments
		cc.Delta.ToolCalls = append(cc.Delta.ToolCalls, td)
	}
	if d.FinishReason != "" {
		f := d.FinishReason
		cc.FinishReason = &f
	}
	return &ChatChunk{ID: id, Object: ObjectChatChunk, Created: created, Model: model, SystemFingerprint: d.Fingerprint, Choices: []ChunkChoice{cc}, Extra: d.Extra}
}

// ChatUsageChunk is the final chunk of stream_options.include_usage: g's
// usage with its details, and what g's backend said beside its answer.
func ChatUsageChunk(id, model string, created int64, g *backend.Generation) *ChatChunk {
	return &ChatChunk{ID: id, Object: ObjectChatChunk, Created: created, Model: model, Choices: []ChunkChoice{},
		Usage: usageOf(g.Usage, g.UsageExtra), SystemFingerprint: g.SystemFingerprint, Extra: g.Extra}
}

// CompletionOf builds a completion from a generation.
func CompletionOf(id, model string, created int64, g *backend.Generation) *Completion {
	out := &Completion{ID: id, Object: ObjectCompletion, Created: created, Model: model, SystemFingerprint: g.SystemFingerprint,
		Choices: make([]CompletionChoice, len(g.Choices)), Usage: usageOf(g.Usage, g.UsageExtra), Extra: g.Extra}
	for i, c := range g.Choices {
		f := c.FinishReason
		out.Choices[i] = CompletionChoice{Text: c.Text, Index: c.Index, Logprobs: LegacyLogprobs(c.Logprobs, 0), FinishReason: &f, StopReason: StopReason(c.StopSequence)}
	}
	return out
}

// CompletionChunkOf builds the stream chunk for one delta; offset is how
// much text the choice had before it.
func CompletionChunkOf(id, model string, created int64, d backend.Delta, offset int) *Completion {
	cc := CompletionChoice{Text: d.Text, Index: d.Index, Logprobs: LegacyLogprobs(d.Logprobs, offset)}
	if d.FinishReason != "" {
		f := d.FinishReason
		cc.FinishReason = &f
	}
	return &Completion{ID: id, Object: ObjectCompletion, Created: created, Model: model, SystemFingerprint: d.Fingerprint, Choices: []CompletionChoice{cc}, Extra: d.Extra}
}

// CompletionUsageChunk is the final usage chunk of a completions stream,
// as ChatUsageChunk.
func CompletionUsageChunk(id, model string, created int64, g *backend.Generation) *Completion {
	return &Completion{ID: id, Object: ObjectCompletion, Created: created, Model: model, Choices: []CompletionChoice{},
		Usage: usageOf(g.Usage, g.UsageExtra), SystemFingerprint: g.SystemFingerprint, Extra: g.Extra}
}

// messageOfBackend encodes a message for an upstream: as the client sent
// it when it is unchanged, else from its fields.
func messageOfBackend(m backend.Message) Message {
	if m.Raw != nil {
		return Message{Raw: m.Raw}
	}
	out := Message{Role: m.Role, Content: Content{Text: m.Content, Parts: m.Parts}, Name: m.Name, ToolCallID: m.ToolCallID,
		Refusal: strPtr(m.Refusal), ReasoningContent: strPtr(m.Reasoning), ToolCalls: toolCalls(m.ToolCalls)}
	if m.Content == "" && m.Parts == nil && m.Role == "assistant" && (len(m.ToolCalls) > 0 || m.Refusal != "") {
		out.Content.Null = true
	}
	return out
}

// ChatRequestOf encodes a backend request as an upstream chat request.
func ChatRequestOf(r *backend.Request, stream bool) *ChatRequest {
	msgs := make([]Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = messageOfBackend(m)
	}
	out := &ChatRequest{Model: r.Model, Messages: msgs, Stream: stream, Seed: r.Seed, Stop: r.Stop,
		Temperature: r.Temperature, TopP: r.TopP, Logprobs: r.Logprobs, User: r.User,
		ToolChoice: r.ToolChoice, ParallelToolCalls: r.ParallelToolCalls, ReasoningEffort: r.ReasoningEffort}
	for _, t := range r.Tools {
		wt := Tool{Type: t.Type, Function: ToolFunction{Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}, Raw: t.Raw}
		out.Tools = append(out.Tools, wt)
	}
	if rf := r.ResponseFormat; rf != nil {
		out.ResponseFormat = &ResponseFormat{Type: rf.Type, Raw: rf.Raw}
		if rf.Type == "json_schema" {
			out.ResponseFormat.JSONSchema = &JSONSchema{Name: rf.SchemaName, Schema: rf.Schema, Strict: rf.Strict}
		}
	}
	if stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if r.N > 1 {
		out.N = &r.N
	}
	if r.MaxTokens > 0 {
		out.MaxTokens = &r.MaxTokens
	}
	if r.Logprobs && r.TopLogprobs > 0 {
		out.TopLogprobs = &r.TopLogprobs
	}
	return out
}

// CompletionRequestOf encodes a backend request as an upstream completions
// request.
func CompletionRequestOf(r *backend.Request, stream bool) *CompletionRequest {
	out := &CompletionRequest{Model: r.Model, Prompt: StringList{r.Prompt}, Stream: stream, Seed: r.Seed, Stop: r.Stop,
		Temperature: r.Temperature, TopP: r.TopP, User: r.User}
	if stream {
		out.StreamOptions = &StreamOptions{IncludeUsage: true}
	}
	if r.N > 1 {
		out.N = &r.N
	}
	if r.MaxTokens > 0 {
		out.MaxTokens = &r.MaxTokens
	}
	if r.Logprobs {
		out.Logprobs = &r.TopLogprobs
	}
	return out
}

// GenerationOfChat converts an upstream chat completion, keeping what the
// gateway does not interpret.
func GenerationOfChat(c *ChatCompletion) *backend.Generation {
	g := &backend.Generation{Model: c.Model, Choices: make([]backend.Choice, len(c.Choices)), SystemFingerprint: c.SystemFingerprint, Extra: c.Extra}
	for i, ch := range c.Choices {
		m := ch.Message
		bc := backend.Choice{Index: ch.Index, FinishReason: ch.FinishReason, Logprobs: BackendLogprobs(ch.Logprobs), Extra: m.Extra, StopSequence: StopSequence(ch.StopReason)}
		if m.Content != nil {
			bc.Text = *m.Content
		}
		if m.Refusal != nil {
			bc.Refusal = *m.Refusal
		}
		bc.Reasoning = reasoningOf(m)
		for j, tc := range m.ToolCalls {
			bc.ToolCalls = append(bc.ToolCalls, backend.ToolCall{Index: j, ID: tc.ID, Type: "function", Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		g.Choices[i] = bc
	}
	if c.Usage != nil {
		g.Usage = backend.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens}
		g.UsageExtra = c.Usage.Extra
	}
	return g
}

// StopReason writes a stop sequence as vLLM's stop_reason: the string,
// null for the end of the answer; unknown is left out.
func StopReason(s *string) json.RawMessage {
	if s == nil {
		return nil
	}
	if *s == "" {
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(*s)
	return b
}

// StopSequence reads vLLM's stop_reason: a string is the stop sequence
// that matched; null (the end of the answer) or a number (a stop token)
// is ""; absent is unknown (nil).
func StopSequence(raw json.RawMessage) *string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = ""
	}
	return &s
}

// reasoningOf reads a message's reasoning: reasoning_content (vLLM,
// DeepSeek) or, from servers that call it reasoning, that field, which then
// leaves Extra so that it is not sent twice.
func reasoningOf(m ResponseMessage) string {
	if m.ReasoningContent != nil {
		return *m.ReasoningContent
	}
	if raw, ok := m.Extra["reasoning"]; ok {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			delete(m.Extra, "reasoning")
			return s
		}
	}
	return ""
}
