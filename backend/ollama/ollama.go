package ollama

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/ollama/ollama/api"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
)

// Client is an Ollama backend.
type Client struct {
	hc       *http.Client
	name     string
	maxBytes int // bound of one answer's text
	api      *api.Client
	logprobs atomic.Bool // false when Probe found a server older than 0.12.11
}

var (
	_ backend.Backend = (*Client)(nil)
	_ backend.Lister  = (*Client)(nil)
)

// New returns a client for the Ollama at base (host:port or a URL). maxBytes
// bounds one answer's text (0: 32 MiB).
func New(name, base string, hc *http.Client, maxBytes int) (*Client, error) {
	if maxBytes <= 0 {
		maxBytes = 32 << 20
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("ollama backend %s: bad url %q: %w", name, base, err)
	}
	if u.Port() == "" && u.Scheme == "http" {
		u.Host = net.JoinHostPort(u.Hostname(), "11434")
	}
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: false}}
	}
	c := &Client{hc: hc, name: name, maxBytes: maxBytes, api: api.NewClient(u, hc)}
	c.logprobs.Store(true)
	return c, nil
}

// Probe asks the server for its version, so that capabilities are known
// before requests arrive: logprobs need Ollama 0.12.11 or later. Builds
// that report 0.0.0 (from source) are taken to be current.
func (c *Client) Probe(ctx context.Context) error {
	v, err := c.api.Version(ctx)
	if err != nil {
		return c.mapErr(err)
	}
	c.logprobs.Store(atLeast(v, 0, 12, 11))
	return nil
}

// atLeast compares a dotted version with major.minor.patch; unparseable and
// 0.0.0 versions count as new enough.
func atLeast(v string, major, minor, patch int) bool {
	var a, b, d int
	if n, _ := fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d.%d.%d", &a, &b, &d); n < 3 || a+b+d == 0 {
		return true
	}
	switch {
	case a != major:
		return a > major
	case b != minor:
		return b > minor
	}
	return d >= patch
}

func (c *Client) Name() string { return c.name }

// Close closes the idle connections to the server.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Caps: logprobs since Ollama 0.12.11 (at most 20 alternatives); no native
// n (Ollama ignores it); no scoring of given text.
func (c *Client) Caps() backend.Caps {
	lp := c.logprobs.Load()
	top := 0
	if lp {
		top = 20
	}
	return backend.Caps{Logprobs: lp, MaxTopLogprobs: top, Continuation: true, Tools: true, Images: true, JSON: true, Reasoning: true}
}

// Models lists the models Ollama has.
func (c *Client) Models(ctx context.Context) ([]string, error) {
	l, err := c.api.List(ctx)
	if err != nil {
		return nil, c.mapErr(err)
	}
	out := make([]string, len(l.Models))
	for i, m := range l.Models {
		out[i] = m.Name
	}
	return out, nil
}

// optionKeys are request fields that Ollama takes as options; they reach it
// from the request's pass-through fields.
var optionKeys = map[string]bool{
	"top_k": true, "min_p": true, "typical_p": true, "repeat_penalty": true, "repeat_last_n": true,
	"presence_penalty": true, "frequency_penalty": true, "num_ctx": true, "num_keep": true, "mirostat": true,
}

// Options builds Ollama's options map from an OpenAI-style request. Ollama
// samples with top_k 40, top_p 0.9, temperature 0.8 and repeat_penalty 1.1
// unless told otherwise; OpenAI means temperature 1, top_p 1 and no top-k or
// penalty, so those are set explicitly. Built as a map so that seed 0 and
// temperature 0 are sent, not dropped by omitempty.
func Options(r *backend.Request) map[string]any {
	o := map[string]any{"temperature": 1.0, "top_p": 1.0, "top_k": 0, "repeat_penalty": 1.0, "num_predict": -1}
	if r.Temperature != nil {
		o["temperature"] = *r.Temperature
	}
	if r.TopP != nil {
		o["top_p"] = *r.TopP
	}
	if r.Seed != nil {
		o["seed"] = *r.Seed
	}
	if r.MaxTokens > 0 {
		o["num_predict"] = r.MaxTokens
	}
	if len(r.Stop) > 0 {
		o["stop"] = r.Stop
	}
	for k, raw := range r.Extra {
		if optionKeys[k] {
			var v any
			if json.Unmarshal(raw, &v) == nil {
				o[k] = v
			}
		}
	}
	return o
}

// messages maps OpenAI messages to Ollama's: images as base64 data (from
// data: URLs; Ollama fetches nothing), tool calls with their arguments as
// objects, tool results with the name of the tool they answer, reasoning
// as thinking.
func messages(ms []backend.Message) ([]api.Message, error) {
	out := make([]api.Message, len(ms))
	toolNames := map[string]string{} // tool call id -> function name
	for i, m := range ms {
		om := api.Message{Role: m.Role, Content: m.Content, Thinking: m.Reasoning, ToolCallID: m.ToolCallID}
		if m.Refusal != "" && m.Content == "" {
			om.Content = m.Refusal
		}
		for j, p := range m.Parts {
			if p.Type != "image_url" {
				continue
			}
			img, err := dataURL(p.ImageURL)
			if err != nil {
				return nil, fault.Unsupported(fmt.Sprintf("messages[%d].content[%d].image_url", i, j), "Ollama takes images as data: URLs (base64): %v", err)
			}
			om.Images = append(om.Images, img)
		}
		for j, tc := range m.ToolCalls {
			args := api.NewToolCallFunctionArguments()
			if strings.TrimSpace(tc.Arguments) != "" {
				if err := json.Unmarshal([]byte(tc.Arguments), &args); err != nil {
					return nil, fault.Invalid(fmt.Sprintf("messages[%d].tool_calls[%d].function.arguments", i, j), "arguments must be a JSON object for Ollama: %v", err)
				}
			}
			om.ToolCalls = append(om.ToolCalls, api.ToolCall{ID: tc.ID, Function: api.ToolCallFunction{Index: j, Name: tc.Name, Arguments: args}})
			toolNames[tc.ID] = tc.Name
		}
		if m.Role == "tool" {
			om.ToolName = toolNames[m.ToolCallID]
		}
		out[i] = om
	}
	return out, nil
}

// dataURL decodes a data: URL's base64 payload.
func dataURL(u string) (api.ImageData, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return nil, errors.New("not a data: URL")
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, errors.New("a data: URL must be base64")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// tools maps OpenAI tool definitions, which Ollama takes in the same shape.
func tools(ts []backend.Tool) (api.Tools, error) {
	var out api.Tools
	for i, t := range ts {
		raw := t.Raw
		if raw == nil {
			raw, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]any{
				"name": t.Name, "description": t.Description, "parameters": t.Parameters}})
		}
		var ot api.Tool
		if err := json.Unmarshal(raw, &ot); err != nil {
			return nil, fault.Unsupported(fmt.Sprintf("tools[%d]", i), "Ollama cannot read this tool: %v", err)
		}
		out = append(out, ot)
	}
	return out, nil
}

// format maps response_format: json_object to "json", json_schema to the
// schema itself.
func format(rf *backend.ResponseFormat) json.RawMessage {
	switch {
	case rf == nil:
		return nil
	case rf.Type == "json_object":
		return json.RawMessage(`"json"`)
	case rf.Type == "json_schema":
		return rf.Schema
	}
	return nil
}

// think maps reasoning_effort to Ollama's think: a level where the model
// has them; "none" turns thinking off.
func think(effort string) *api.ThinkValue {
	switch effort {
	case "":
		return nil
	case "none":
		return &api.ThinkValue{Value: false}
	}
	return &api.ThinkValue{Value: effort}
}

// ChatRequest is r as Ollama's /api/chat takes it.
func ChatRequest(r *backend.Request, stream bool) (*api.ChatRequest, error) {
	msgs, err := messages(r.Messages)
	if err != nil {
		return nil, err
	}
	ts, err := tools(r.Tools)
	if err != nil {
		return nil, err
	}
	return &api.ChatRequest{Model: r.Model, Messages: msgs, Stream: &stream, Options: Options(r), Tools: ts,
		Format: format(r.ResponseFormat), Think: think(r.ReasoningEffort), Logprobs: r.Logprobs, TopLogprobs: r.TopLogprobs}, nil
}

// checkOllama refuses what Ollama cannot do with an otherwise valid
// request: a tool_choice other than auto, parallel_tool_calls false and a
// strict tool, which it has no field for; a trailing assistant message
// without continue_final_message, which it would continue; a field the gateway does not
// interpret that is none of Ollama's options (logit_bias, …), and one
// inside a message, tool or response_format (wire.Unread), which would
// otherwise be dropped.
func checkOllama(r *backend.Request) error {
	if len(r.ToolChoice) > 0 && string(r.ToolChoice) != `"auto"` {
		return fault.Unsupported("tool_choice", "Ollama always chooses tools itself (tool_choice auto); it cannot be told %s", r.ToolChoice)
	}
	if r.ParallelToolCalls != nil && !*r.ParallelToolCalls {
		return fault.Unsupported("parallel_tool_calls", "Ollama cannot be told to call one tool at a time")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		if !optionKeys[k] {
			return fault.Unsupported(k, "Ollama has no %s (the fields it takes beside OpenAI's are %s)", fault.Clip(k, 64), strings.Join(slices.Sorted(maps.Keys(optionKeys)), ", "))
		}
	}
	if n := len(r.Messages); n > 0 && !r.Continue && r.Messages[n-1].Role == "assistant" {
		// OpenAI answers after it, in a turn of its own; Ollama's templates
		// leave it open and continue it, which would change the request's
		// meaning.
		return fault.Unsupported(fmt.Sprintf("messages[%d]", n-1), "Ollama continues a trailing assistant message rather than answer after it: send continue_final_message: true to continue it, or end the messages with the turn to answer")
	}
	for i, t := range r.Tools {
		if t.Strict != nil && *t.Strict {
			return fault.Unsupported(fmt.Sprintf("tools[%d].function.strict", i), "Ollama does not hold tool calls to their parameters' schema")
		}
	}
	if p := wire.Unread(r); p != "" {
		return fault.Unsupported(p, "Ollama has no %s (fields the gateway does not read go only to OpenAI-compatible backends, as sent)", fault.Clip(p, 96))
	}
	return nil
}

func (c *Client) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	return c.run(ctx, r, nil)
}

func (c *Client) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	return c.run(ctx, r, emit)
}

func (c *Client) run(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	if r.Choices() > 1 { // Ollama has no n: fan out
		if emit == nil {
			return backend.GenerateN(ctx, c, r)
		}
		return backend.StreamN(ctx, c, r, emit)
	}
	if err := checkOllama(r); err != nil {
		return nil, err
	}
	stream := emit != nil
	g := &backend.Generation{Model: r.Model}
	var text, reasoning strings.Builder
	var calls []backend.ToolCall
	ch := backend.Choice{}
	if r.Logprobs {
		ch.Logprobs = []backend.TokenLogprob{}
	}
	onChunk := func(msg api.Message, lps []api.Logprob, done bool, reason string, m api.Metrics) error {
		if err := ctx.Err(); err != nil { // lines already read may outlive the cancelled call
			return err
		}
		d := backend.Delta{Text: msg.Content, Reasoning: msg.Thinking, Logprobs: toLogprobs(lps, r.Logprobs)}
		if text.Len()+reasoning.Len()+len(msg.Content)+len(msg.Thinking) > c.maxBytes {
			return fmt.Errorf("%w: %s: answer larger than %d bytes (backends.%s.max_response_bytes)", fault.ErrUpstream, c.name, c.maxBytes, c.name)
		}
		text.WriteString(msg.Content)
		reasoning.WriteString(msg.Thinking)
		for _, tc := range msg.ToolCalls {
			// Ollama sends each call whole; it numbers them from 0 per
			// answer and may omit the id, which OpenAI clients need.
			call := backend.ToolCall{Index: len(calls), ID: tc.ID, Type: "function", Name: tc.Function.Name}
			if call.ID == "" {
				call.ID = fmt.Sprintf("call_%d", len(calls))
			}
			args, _ := json.Marshal(tc.Function.Arguments)
			call.Arguments = string(args)
			calls = append(calls, call)
			d.ToolCalls = append(d.ToolCalls, call)
		}
		if r.Logprobs {
			ch.Logprobs = append(ch.Logprobs, d.Logprobs...)
		}
		if done {
			ch.FinishReason = finishReason(reason)
			if len(calls) > 0 && ch.FinishReason == backend.FinishStop {
				ch.FinishReason = backend.FinishToolCalls
			}
			d.FinishReason = ch.FinishReason
			g.Usage = backend.Usage{PromptTokens: m.PromptEvalCount, CompletionTokens: m.EvalCount}
			ch.Tokens = m.EvalCount
		}
		if emit != nil && (d.Text != "" || d.Reasoning != "" || d.ToolCalls != nil || d.Logprobs != nil || done) {
			return emit(d)
		}
		return nil
	}
	var err error
	if r.Messages != nil && !r.Continue {
		req, err := ChatRequest(r, stream)
		if err != nil {
			return nil, err
		}
		err = c.api.Chat(ctx, req, func(resp api.ChatResponse) error {
			return onChunk(resp.Message, resp.Logprobs, resp.Done, resp.DoneReason, resp.Metrics)
		})
		if err != nil {
			return nil, c.mapErr(err)
		}
	} else {
		prompt := r.Prompt
		if r.Continue {
			if prompt, err = c.continuation(ctx, r); err != nil {
				return nil, err
			}
		}
		req := &api.GenerateRequest{Model: r.Model, Prompt: prompt, Raw: true, Stream: &stream, Options: Options(r),
			Format: format(r.ResponseFormat), Logprobs: r.Logprobs, TopLogprobs: r.TopLogprobs}
		err = c.api.Generate(ctx, req, func(resp api.GenerateResponse) error {
			return onChunk(api.Message{Content: resp.Response, Thinking: resp.Thinking}, resp.Logprobs, resp.Done, resp.DoneReason, resp.Metrics)
		})
		if err != nil {
			return nil, c.mapErr(err)
		}
	}
	if ch.FinishReason == "" {
		return nil, fmt.Errorf("%w: ollama stream ended before done", fault.ErrUpstream)
	}
	ch.Text, ch.Reasoning, ch.ToolCalls = text.String(), reasoning.String(), calls
	g.Choices = []backend.Choice{ch}
	return g, nil
}

// continuation renders the conversation before the partial assistant message
// with the model's own template (Ollama's _debug_render_only), so that the
// partial text can be appended and continued in raw mode whatever the
// template does with a trailing assistant turn.
func (c *Client) continuation(ctx context.Context, r *backend.Request) (string, error) {
	n := len(r.Messages)
	stream := false
	msgs, err := messages(r.Messages[:n-1])
	if err != nil {
		return "", err
	}
	ts, err := tools(r.Tools)
	if err != nil {
		return "", err
	}
	req := &api.ChatRequest{Model: r.Model, Messages: msgs, Tools: ts, Stream: &stream, DebugRenderOnly: true}
	var rendered string
	err = c.api.Chat(ctx, req, func(resp api.ChatResponse) error {
		if resp.DebugInfo != nil {
			rendered = resp.DebugInfo.RenderedTemplate
		}
		return nil
	})
	if err != nil {
		return "", c.mapErr(err)
	}
	if rendered == "" {
		return "", fmt.Errorf("%w: %s did not render the chat template", fault.ErrUpstream, c.name)
	}
	return rendered + r.Messages[n-1].Content, nil
}

func finishReason(r string) string {
	if r == "length" {
		return backend.FinishLength
	}
	return backend.FinishStop
}

func toLogprobs(lps []api.Logprob, want bool) []backend.TokenLogprob {
	if !want || len(lps) == 0 {
		return nil
	}
	out := make([]backend.TokenLogprob, len(lps))
	for i, lp := range lps {
		out[i] = backend.TokenLogprob{Token: backend.Spelled(lp.Token, lp.Bytes), Logprob: lp.Logprob}
		for _, t := range lp.TopLogprobs {
			out[i].Top = append(out[i].Top, backend.TopLogprob{Token: backend.Spelled(t.Token, t.Bytes), Logprob: t.Logprob})
		}
	}
	return out
}

// mapErr places Ollama's errors in the taxonomy, after the backend's
// name as every adapter's errors are.
func (c *Client) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var se api.StatusError
	if errors.As(err, &se) {
		msg := c.name + ": " + se.ErrorMessage
		switch {
		case se.StatusCode == http.StatusNotFound:
			return &fault.ParamError{Param: "model", Msg: msg, Err: fault.ErrNotFound}
		case se.StatusCode == http.StatusBadRequest:
			return &fault.ParamError{Msg: msg, Err: fault.ErrInvalid}
		case se.StatusCode == http.StatusServiceUnavailable || se.StatusCode == http.StatusTooManyRequests:
			return &fault.ParamError{Msg: msg, Err: fault.ErrOverloaded}
		}
		return fmt.Errorf("%w: %s: status %d: %s", fault.ErrUpstream, c.name, se.StatusCode, se.ErrorMessage)
	}
	return fmt.Errorf("%w: %s: %v", fault.ErrUpstream, c.name, err)
}
