package wire

import (
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

// ChatLogprobs converts backend logprobs to the chat wire shape.
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

// BackendLogprobs converts chat wire logprobs to backend logprobs.
func BackendLogprobs(c *ChoiceLogprobs) []backend.TokenLogprob {
	if c == nil {
		return nil
	}
	out := make([]backend.TokenLogprob, len(c.Content))
	for i, lp := range c.Content {
		var top []backend.TopLogprob
		for _, t := range lp.TopLogprobs {
			top = append(top, backend.TopLogprob{Token: t.Token, Logprob: t.Logprob})
		}
		out[i] = backend.TokenLogprob{Token: lp.Token, Logprob: lp.Logprob, Top: top}
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
			sortTop(out[i].Top)
		}
	}
	return out
}

func sortTop(top []backend.TopLogprob) {
	for i := 1; i < len(top); i++ {
		for j := i; j > 0 && (top[j].Logprob > top[j-1].Logprob || top[j].Logprob == top[j-1].Logprob && top[j].Token < top[j-1].Token); j-- {
			top[j], top[j-1] = top[j-1], top[j]
		}
	}
}

func usage(u backend.Usage) *Usage {
	return &Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
}

// Chat builds a chat completion from a generation.
func Chat(id, model string, created int64, g *backend.Generation) *ChatCompletion {
	out := &ChatCompletion{ID: id, Object: ObjectChat, Created: created, Model: model,
		Choices: make([]ChatChoice, len(g.Choices)), Usage: usage(g.Usage)}
	for i, c := range g.Choices {
		out.Choices[i] = ChatChoice{Index: c.Index, Message: ResponseMessage{Role: "assistant", Content: c.Text},
			Logprobs: ChatLogprobs(c.Logprobs), FinishReason: c.FinishReason}
	}
	return out
}

// ChatChunkOf builds the chunk for one delta. The first chunk of each choice
// carries the assistant role, as OpenAI's do.
func ChatChunkOf(id, model string, created int64, d backend.Delta, first bool) *ChatChunk {
	cc := ChunkChoice{Index: d.Index, Logprobs: ChatLogprobs(d.Logprobs)}
	if first {
		cc.Delta.Role = "assistant"
	}
	if d.Text != "" || first {
		t := d.Text
		cc.Delta.Content = &t
	}
	if d.FinishReason != "" {
		f := d.FinishReason
		cc.FinishReason = &f
	}
	return &ChatChunk{ID: id, Object: ObjectChatChunk, Created: created, Model: model, Choices: []ChunkChoice{cc}}
}

// ChatUsageChunk is the final chunk of stream_options.include_usage.
func ChatUsageChunk(id, model string, created int64, u backend.Usage) *ChatChunk {
	return &ChatChunk{ID: id, Object: ObjectChatChunk, Created: created, Model: model, Choices: []ChunkChoice{}, Usage: usage(u)}
}

// CompletionOf builds a completion from a generation.
func CompletionOf(id, model string, created int64, g *backend.Generation) *Completion {
	out := &Completion{ID: id, Object: ObjectCompletion, Created: created, Model: model,
		Choices: make([]CompletionChoice, len(g.Choices)), Usage: usage(g.Usage)}
	for i, c := range g.Choices {
		f := c.FinishReason
		out.Choices[i] = CompletionChoice{Text: c.Text, Index: c.Index, Logprobs: LegacyLogprobs(c.Logprobs, 0), FinishReason: &f}
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
	return &Completion{ID: id, Object: ObjectCompletion, Created: created, Model: model, Choices: []CompletionChoice{cc}}
}

// CompletionUsageChunk is the final usage chunk of a completions stream.
func CompletionUsageChunk(id, model string, created int64, u backend.Usage) *Completion {
	return &Completion{ID: id, Object: ObjectCompletion, Created: created, Model: model, Choices: []CompletionChoice{}, Usage: usage(u)}
}

// ChatRequestOf encodes a backend request as an upstream chat request.
func ChatRequestOf(r *backend.Request, stream bool) *ChatRequest {
	msgs := make([]Message, len(r.Messages))
	for i, m := range r.Messages {
		msgs[i] = Message{Role: m.Role, Content: Content(m.Content), Name: m.Name}
	}
	out := &ChatRequest{Model: r.Model, Messages: msgs, Stream: stream, Seed: r.Seed, Stop: r.Stop,
		Temperature: r.Temperature, TopP: r.TopP, Logprobs: r.Logprobs, User: r.User}
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

// GenerationOfChat converts an upstream chat completion.
func GenerationOfChat(c *ChatCompletion) *backend.Generation {
	g := &backend.Generation{Model: c.Model, Choices: make([]backend.Choice, len(c.Choices))}
	for i, ch := range c.Choices {
		g.Choices[i] = backend.Choice{Index: ch.Index, Text: ch.Message.Content, FinishReason: ch.FinishReason, Logprobs: BackendLogprobs(ch.Logprobs)}
	}
	if c.Usage != nil {
		g.Usage = backend.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens}
	}
	return g
}
