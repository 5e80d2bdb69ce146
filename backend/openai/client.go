package openai

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// Flavours of OpenAI-compatible servers.
const (
	FlavourOpenAI   = "openai"
	FlavourVLLM     = "vllm"
	FlavourLlamaCPP = "llamacpp"
)

// Client is an OpenAI-compatible backend.
type Client struct {
	name     string
	maxBytes int    // bound of a non-streamed body and of one streamed event
	base     string // ends without a slash, e.g. http://host:8000/v1
	apiKey   string
	flavour  string
	hc       *fasthttp.Client
	calls    *tracker
}

var (
	_ backend.Backend = (*Client)(nil)
	_ backend.Lister  = (*Client)(nil)
	_ backend.Scorer  = (*Client)(nil)
)

// New returns a client for the server at base (its /v1 URL). maxBytes
// bounds a non-streamed answer and one streamed event (0: 32 MiB).
func New(name, base, apiKey, flavour string, maxConns, maxBytes int) (*Client, error) {
	if maxBytes <= 0 {
		maxBytes = 32 << 20
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("openai backend %s: url %q must be http(s)://host[:port]/path", name, base)
	}
	switch flavour {
	case "":
		flavour = FlavourOpenAI
	case FlavourOpenAI, FlavourVLLM, FlavourLlamaCPP:
	default:
		return nil, fmt.Errorf("openai backend %s: unknown flavour %q", name, flavour)
	}
	t := newTracker()
	if u.Scheme == "https" {
		t.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	pool := maxConns
	if pool <= 0 {
		pool = fasthttp.DefaultMaxConnsPerHost
	}
	hc := &fasthttp.Client{
		Name:                     "steergate",
		MaxConnsPerHost:          maxConns,
		MaxIdleConnDuration:      90 * time.Second,
		StreamResponseBody:       true,
		Dial:                     t.dial(10 * time.Second),
		NoDefaultUserAgentHeader: false,
		MaxConnWaitTimeout:       time.Minute,
		RetryIfErr:               t.retry,
		// Every pooled connection may have gone stale in a pause; a call
		// tries each once at most (tracker.retry retries nothing else).
		MaxIdemponentCallAttempts: pool + 1,
	}
	return &Client{name: name, maxBytes: maxBytes, base: strings.TrimRight(base, "/"), apiKey: apiKey, flavour: flavour, hc: hc, calls: t}, nil
}

func (c *Client) Name() string { return c.name }

// Close closes the idle connections to the server.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Caps by flavour: OpenAI continues nothing and scores nothing; vLLM does
// both (continue_final_message; echo with max_tokens 0) and says which stop
// sequence ended a choice (stop_reason); llama.cpp continues a trailing
// assistant message by itself.
func (c *Client) Caps() backend.Caps {
	// What the client sends reaches the server as sent; the server itself
	// refuses what its model cannot do.
	caps := backend.Caps{Logprobs: true, MaxTopLogprobs: 20, NativeN: true, Tools: true, Images: true, Audio: true, Files: true,
		AnyParts: true, JSON: true, Reasoning: true}
	switch c.flavour {
	case FlavourVLLM:
		caps.Continuation, caps.Scoring, caps.StopSequence = true, true, true
	case FlavourLlamaCPP:
		caps.Continuation, caps.NativeN = true, false
	}
	return caps
}

func (c *Client) newRequest(method, path string, body []byte) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(c.base + path)
	req.Header.SetMethod(method)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	return req
}

// do sends req; the caller reads resp and then calls done.
func (c *Client) do(ctx context.Context, req *fasthttp.Request) (resp *fasthttp.Response, done func(), err error) {
	resp = fasthttp.AcquireResponse()
	stop := c.calls.watch(ctx, req)
	done = func() {
		stop()
		_ = resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(24 * time.Hour)
	}
	err = c.hc.DoDeadline(req, resp, deadline)
	fasthttp.ReleaseRequest(req) // sent: a stream need not hold it while it lasts
	if err != nil {
		done()
		return nil, nil, c.callErr(ctx, err)
	}
	if sc := resp.StatusCode(); sc >= 400 {
		body, _ := c.read(resp, 64<<10)
		err := statusErr(c.name, sc, body)
		done()
		return nil, nil, err
	}
	return resp, done, nil
}

// answer reads a call's whole answer, up to max_response_bytes; a call
// cancelled meanwhile (its connection closed under the read) reports why
// it was cancelled, not the read's error.
func (c *Client) answer(ctx context.Context, resp *fasthttp.Response) ([]byte, error) {
	b, err := c.read(resp, c.maxBytes)
	if ctx.Err() != nil {
		return nil, context.Cause(ctx)
	}
	return b, err
}

// read reads a whole body of at most limit bytes; a larger one is a
// backend error, and what was read is dropped.
func (c *Client) read(resp *fasthttp.Response, limit int) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.BodyStream(), int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: reading the answer: %v", fault.ErrUpstream, c.name, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %s: answer larger than %d bytes (backends.%s.max_response_bytes)", fault.ErrUpstream, c.name, limit, c.name)
	}
	return b, nil
}

func (c *Client) callErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if errors.Is(err, fasthttp.ErrTimeout) {
		return fmt.Errorf("%w: %s: %v", fault.ErrTimeout, c.name, err)
	}
	return fmt.Errorf("%w: %s: %v", fault.ErrUpstream, c.name, err)
}

// statusErr maps an upstream error status and body into the taxonomy.
func statusErr(name string, status int, body []byte) error {
	msg, param, code := errorOf(body)
	if len(msg) > 512 {
		msg = msg[:512]
	}
	msg = fmt.Sprintf("%s: %s", name, msg)
	switch {
	case status == 404:
		return &fault.ParamError{Param: "model", Msg: msg, Err: fault.ErrNotFound, Code: code}
	case status == 400 || status == 422:
		return &fault.ParamError{Param: param, Msg: msg, Err: fault.ErrInvalid, Code: code}
	case status == 413:
		return &fault.ParamError{Msg: msg, Err: fault.ErrTooLarge, Code: code}
	case status == 429 || status == 503:
		return &fault.ParamError{Msg: msg, Err: fault.ErrOverloaded, Code: code}
	case status == 504:
		return &fault.ParamError{Msg: msg, Err: fault.ErrTimeout, Code: code}
	}
	return fmt.Errorf("%w: status %d: %s", fault.ErrUpstream, status, msg)
}

// errorOf reads a server's error body: OpenAI's envelope, the members at
// the top (vLLM before 0.8), or an error that is a string; a code that is
// no string (vLLM and llama.cpp give the HTTP status there) is left out. A
// body of another shape is the message as it is.
func errorOf(body []byte) (msg, param, code string) {
	type detail struct {
		Message string          `json:"message"`
		Param   *string         `json:"param"`
		Code    json.RawMessage `json:"code"`
	}
	var env struct {
		Error json.RawMessage `json:"error"`
		detail
	}
	d := &env.detail
	if json.Unmarshal(body, &env) != nil {
		return strings.TrimSpace(string(body)), "", ""
	}
	var inner detail
	switch e := bytes.TrimSpace(env.Error); {
	case len(e) > 0 && e[0] == '"':
		if json.Unmarshal(e, &msg) == nil && msg != "" {
			return msg, "", ""
		}
	case len(e) > 0 && e[0] == '{':
		if json.Unmarshal(e, &inner) == nil && inner.Message != "" {
			d = &inner
		}
	}
	if d.Message == "" {
		return strings.TrimSpace(string(body)), "", ""
	}
	if d.Param != nil {
		param = *d.Param
	}
	if len(d.Code) > 0 && d.Code[0] == '"' && len(d.Code) <= 66 {
		_ = json.Unmarshal(d.Code, &code)
	}
	return d.Message, param, code
}

// Models lists the server's models.
func (c *Client) Models(ctx context.Context) ([]string, error) {
	resp, done, err := c.do(ctx, c.newRequest("GET", "/models", nil))
	if err != nil {
		return nil, err
	}
	defer done()
	body, err := c.answer(ctx, resp)
	if err != nil {
		return nil, err
	}
	var l wire.ModelList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("%w: %s: bad /models body: %v", fault.ErrUpstream, c.name, err)
	}
	out := make([]string, len(l.Data))
	for i, m := range l.Data {
		out[i] = m.ID
	}
	return out, nil
}

// body encodes r for the upstream, with the flavour's extensions.
func (c *Client) body(r *backend.Request, stream bool) ([]byte, string, error) {
	if r.Messages == nil {
		cr := wire.CompletionRequestOf(r, stream)
		b, err := wire.Marshal(cr, r.Extra)
		return b, "/completions", err
	}
	cr := wire.ChatRequestOf(r, stream)
	if r.Continue {
		switch c.flavour {
		case FlavourVLLM:
			f := false
			cr.ContinueFinalMessage, cr.AddGenerationPrompt = true, &f
		case FlavourLlamaCPP: // continues a trailing assistant message by default
		default:
			return nil, "", fault.Unsupported("continue_final_message", "%s cannot continue a partial assistant message", c.name)
		}
	}
	b, err := wire.Marshal(cr, r.Extra)
	return b, "/chat/completions", err
}

// RawOK: the request crosses as written unless it needs what the adapter
// translates (continuing a partial message) or fans out (n without native
// n).
func (c *Client) RawOK(r *backend.Request) bool {
	return !r.Continue && (r.N <= 1 || c.Caps().NativeN)
}

// Raw sends the client's body with this backend's model name and returns
// the answer to relay: the whole body (checked to be JSON and within
// max_response_bytes), or the event stream once the headers are in.
func (c *Client) Raw(ctx context.Context, r *backend.RawRequest) (*backend.RawAnswer, error) {
	body, err := rawBody(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", fault.ErrInvalid, err)
	}
	path := "/completions"
	if r.Chat {
		path = "/chat/completions"
	}
	resp, done, err := c.do(ctx, c.newRequest("POST", path, body))
	if err != nil {
		return nil, err
	}
	if r.Stream {
		body := &endReader{r: resp.BodyStream()}
		return &backend.RawAnswer{Stream: body, Close: func() { body.drain(resp); done() }}, nil
	}
	defer done()
	raw, err := c.answer(ctx, resp)
	if err != nil {
		return nil, err
	}
	if !wire.Valid(raw) {
		return nil, fmt.Errorf("%w: %s: the answer is not JSON", fault.ErrUpstream, c.name)
	}
	return &backend.RawAnswer{Body: raw, Close: func() {}}, nil
}

// rawBody is the client's body with the backend's model name. Its map is
// built on a frame of its own, gone before the request is sent: Raw runs
// on a connection's goroutine, whose stack is to stay within 8 KiB
// (gateway.sendStream).
//
//go:noinline
func rawBody(r *backend.RawRequest) ([]byte, error) {
	return wire.Rewrite(r.Body, map[string]any{"model": r.Req.Model}, r.Drop...)
}

func (c *Client) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	body, path, err := c.body(r, false)
	if err != nil {
		return nil, err
	}
	resp, done, err := c.do(ctx, c.newRequest("POST", path, body))
	if err != nil {
		return nil, err
	}
	defer done()
	raw, err := c.answer(ctx, resp)
	if err != nil {
		return nil, err
	}
	if r.Messages == nil {
		var cmp wire.Completion
		if err := json.Unmarshal(raw, &cmp); err != nil {
			return nil, fmt.Errorf("%w: %s: bad completion body: %v", fault.ErrUpstream, c.name, err)
		}
		g := generationOfCompletion(&cmp)
		g.CountTokens()
		return g, nil
	}
	g, err := decodeChat(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bad chat completion body: %v", fault.ErrUpstream, c.name, err)
	}
	g.CountTokens() // step-wise strategies count a step's tokens against max_tokens
	return g, nil
}

// decodeChat reads a chat completion body.
func decodeChat(raw []byte) (*backend.Generation, error) {
	var cc wire.ChatCompletion
	if err := json.Unmarshal(raw, &cc); err != nil {
		return nil, err
	}
	return wire.GenerationOfChat(&cc), nil
}

func generationOfCompletion(cmp *wire.Completion) *backend.Generation {
	g := &backend.Generation{Model: cmp.Model, Choices: make([]backend.Choice, len(cmp.Choices)), SystemFingerprint: cmp.SystemFingerprint, Extra: cmp.Extra}
	for i, ch := range cmp.Choices {
		g.Choices[i] = backend.Choice{Index: ch.Index, Text: ch.Text, Logprobs: wire.BackendLegacyLogprobs(ch.Logprobs), StopSequence: wire.StopSequence(ch.StopReason)}
		if ch.FinishReason != nil {
			g.Choices[i].FinishReason = *ch.FinishReason
		}
	}
	if cmp.Usage != nil {
		g.Usage = backend.Usage{PromptTokens: cmp.Usage.PromptTokens, CompletionTokens: cmp.Usage.CompletionTokens}
		g.UsageExtra = cmp.Usage.Extra
	}
	return g
}

// chunk is the union of chat and completion stream chunks.
type chunk struct {
	Model             string `json:"model"`
	SystemFingerprint string `json:"system_fingerprint"`
	Choices           []struct {
		Index int `json:"index"`
		Delta struct {
			Content          *string              `json:"content"`
			ReasoningContent *string              `json:"reasoning_content"`
			Reasoning        *string              `json:"reasoning"` // what some servers call it
			Refusal          *string              `json:"refusal"`
			ToolCalls        []wire.ToolCallDelta `json:"tool_calls"`
		} `json:"delta"`
		Text         string          `json:"text"`
		Logprobs     json.RawMessage `json:"logprobs"`
		FinishReason *string         `json:"finish_reason"`
	} `json:"choices"`
	Usage *wire.Usage     `json:"usage"`
	Error json.RawMessage `json:"error"`
}

func (c *Client) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	body, path, err := c.body(r, true)
	if err != nil {
		return nil, err
	}
	resp, done, err := c.do(ctx, c.newRequest("POST", path, body))
	if err != nil {
		return nil, err
	}
	events := &endReader{r: resp.BodyStream()}
	defer func() { events.drain(resp); done() }()
	g, err := readStream(events, r, c.name, c.maxBytes, func(d backend.Delta) error {
		if ctx.Err() != nil { // buffered chunks may outlive the closed connection
			return context.Cause(ctx)
		}
		return emit(d)
	})
	var ee emitErr
	switch {
	case errors.As(err, &ee):
		return nil, ee.error // the caller's own error, unchanged
	case err != nil && ctx.Err() != nil:
		return nil, context.Cause(ctx)
	}
	return g, err
}

// chunkKeys are the stream chunk's members this package reads or writes
// itself; a chunk's others go on with its deltas.
var chunkKeys = map[string]bool{"id": true, "object": true, "created": true, "model": true, "system_fingerprint": true,
	"choices": true, "usage": true, "error": true}

// streamErr is the error a server sent in its stream, in an event of type
// error or in a chunk's error member.
func streamErr(name string, data []byte) error {
	msg, _, _ := errorOf(data)
	return fmt.Errorf("%w: %s: %s", fault.ErrUpstream, name, fault.Clip(msg, 1024))
}

// readStream reads an upstream's server-sent events into deltas for emit
// and the whole generation. An error of emit comes back as an emitErr.
func readStream(body io.Reader, r *backend.Request, name string, maxEvent int, emit func(backend.Delta) error) (*backend.Generation, error) {
	chat := r.Messages != nil
	g := &backend.Generation{Model: r.Model}
	choices := map[int]*accumulator{}
	err := readSSE(body, maxEvent, func(event string, data []byte) error {
		if event == "error" {
			return streamErr(name, data)
		}
		var ch chunk
		if err := json.Unmarshal(data, &ch); err != nil {
			return fmt.Errorf("%w: %s: bad stream chunk: %v", fault.ErrUpstream, name, err)
		}
		if len(ch.Error) > 0 && string(ch.Error) != "null" {
			return streamErr(name, data)
		}
		if ch.Usage != nil {
			g.Usage = backend.Usage{PromptTokens: ch.Usage.PromptTokens, CompletionTokens: ch.Usage.CompletionTokens}
			g.UsageExtra = ch.Usage.Extra
		}
		if ch.SystemFingerprint != "" {
			g.SystemFingerprint = ch.SystemFingerprint
		}
		extra, err := wire.ExtraMembers(data, chunkKeys)
		if err != nil {
			return fmt.Errorf("%w: %s: bad stream chunk: %v", fault.ErrUpstream, name, err)
		}
		for k, v := range extra {
			if k != "obfuscation" { // a chunk's own padding, no field of the answer
				if g.Extra == nil {
					g.Extra = map[string]json.RawMessage{}
				}
				g.Extra[k] = v
			}
		}
		for _, cc := range ch.Choices {
			d := backend.Delta{Index: cc.Index, Text: cc.Text, Fingerprint: ch.SystemFingerprint, Extra: extra}
			if chat {
				dd := cc.Delta
				d.Text, d.Refusal = deref(dd.Content), deref(dd.Refusal)
				d.Reasoning = deref(dd.ReasoningContent)
				if dd.ReasoningContent == nil {
					d.Reasoning = deref(dd.Reasoning)
				}
				for _, tc := range dd.ToolCalls {
					d.ToolCalls = append(d.ToolCalls, backend.ToolCall{Index: tc.Index, ID: tc.ID, Type: tc.Type,
						Name: tc.Function.Name, Arguments: tc.Function.Arguments})
				}
			}
			if len(cc.Logprobs) > 0 && string(cc.Logprobs) != "null" {
				d.Logprobs = decodeLogprobs(cc.Logprobs, chat)
			}
			if cc.FinishReason != nil {
				d.FinishReason = *cc.FinishReason
			}
			acc := choices[cc.Index]
			if acc == nil {
				acc = &accumulator{}
				choices[cc.Index] = acc
			}
			acc.add(d)
			if d.Text != "" || d.Reasoning != "" || d.Refusal != "" || d.ToolCalls != nil || d.Logprobs != nil || d.FinishReason != "" {
				if err := emit(d); err != nil {
					return emitErr{err}
				}
			}
		}
		return nil
	})
	if err == nil {
		// The body ended before [DONE]: a stream cut short (its usage chunk
		// may be missing too), as the passthrough relay also reports it.
		err = io.ErrUnexpectedEOF
	}
	if !errors.Is(err, errDone) {
		var ee emitErr
		if errors.As(err, &ee) || errors.Is(err, fault.ErrUpstream) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: stream broken: %v", fault.ErrUpstream, name, err)
	}
	for i := range r.Choices() {
		acc := choices[i]
		if acc == nil || acc.finish == "" {
			return nil, fmt.Errorf("%w: %s: stream ended before choice %d finished", fault.ErrUpstream, name, i)
		}
		ch := acc.choice(i)
		if !r.Logprobs {
			ch.Logprobs, ch.Tokens = nil, 0
		}
		g.Choices = append(g.Choices, ch)
	}
	g.CountTokens()
	return g, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// accumulator builds a choice from its streamed deltas, in time linear in
// their size.
type accumulator struct {
	text, reasoning, refusal strings.Builder
	calls                    []backend.ToolCall
	args                     []strings.Builder
	logprobs                 []backend.TokenLogprob
	finish                   string
}

func (a *accumulator) add(d backend.Delta) {
	a.text.WriteString(d.Text)
	a.reasoning.WriteString(d.Reasoning)
	a.refusal.WriteString(d.Refusal)
	for _, tc := range d.ToolCalls {
		for tc.Index >= len(a.calls) {
			a.calls = append(a.calls, backend.ToolCall{Index: len(a.calls), Type: "function"})
			a.args = append(a.args, strings.Builder{})
		}
		c := &a.calls[tc.Index]
		if tc.ID != "" {
			c.ID = tc.ID
		}
		if tc.Name != "" {
			c.Name += tc.Name
		}
		a.args[tc.Index].WriteString(tc.Arguments)
	}
	a.logprobs = append(a.logprobs, d.Logprobs...)
	if d.FinishReason != "" {
		a.finish = d.FinishReason
	}
}

func (a *accumulator) choice(i int) backend.Choice {
	c := backend.Choice{Index: i, Text: a.text.String(), Reasoning: a.reasoning.String(), Refusal: a.refusal.String(),
		FinishReason: a.finish, Logprobs: a.logprobs, Tokens: len(a.logprobs)}
	for j, call := range a.calls {
		call.Arguments = a.args[j].String()
		c.ToolCalls = append(c.ToolCalls, call)
	}
	return c
}

// emitErr marks an error returned by the caller's emit.
type emitErr struct{ error }

func decodeLogprobs(raw json.RawMessage, chat bool) []backend.TokenLogprob {
	if chat {
		var lp wire.ChoiceLogprobs
		if json.Unmarshal(raw, &lp) != nil {
			return nil
		}
		return wire.BackendLogprobs(&lp)
	}
	var lp wire.CompletionLogprobs
	if json.Unmarshal(raw, &lp) != nil {
		return nil
	}
	return wire.BackendLegacyLogprobs(&lp)
}

// ScoreText returns the logprob of text after a raw prompt, with vLLM's
// echo and max_tokens 0. Chat requests would need the server's chat
// template rendered here, which the API does not expose, so only raw
// prompts are scored.
func (c *Client) ScoreText(ctx context.Context, r *backend.Request, text string) (*backend.Score, error) {
	if !c.Caps().Scoring {
		return nil, fault.Unsupported("", "%s (%s) cannot score given text", c.name, c.flavour)
	}
	if r.Messages != nil {
		return nil, fault.Unsupported("", "%s scores raw prompts only, not chat messages", c.name)
	}
	zero, lp := 0, 0
	body, err := wire.Marshal(&wire.CompletionRequest{Model: r.Model, Prompt: wire.StringList{r.Prompt + text}, Echo: true,
		MaxTokens: &zero, Logprobs: &lp}, nil)
	if err != nil {
		return nil, err
	}
	resp, done, err := c.do(ctx, c.newRequest("POST", "/completions", body))
	if err != nil {
		return nil, err
	}
	defer done()
	var out struct {
		Choices []struct {
			Logprobs struct {
				TokenLogprobs []*float64 `json:"token_logprobs"`
				TextOffset    []int      `json:"text_offset"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	body, err = c.answer(ctx, resp)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Choices) == 0 {
		return nil, fmt.Errorf("%w: %s: bad echo body", fault.ErrUpstream, c.name)
	}
	lps := out.Choices[0].Logprobs
	sc := &backend.Score{}
	for i, off := range lps.TextOffset {
		if off < len(r.Prompt) || i >= len(lps.TokenLogprobs) || lps.TokenLogprobs[i] == nil {
			continue
		}
		sc.Logprob += *lps.TokenLogprobs[i]
		sc.Tokens++
	}
	if sc.Tokens == 0 && text != "" {
		// No logprob for the text: a sum over none would read as certain.
		return nil, fmt.Errorf("%w: %s: the echo gave no logprobs for the text", fault.ErrUpstream, c.name)
	}
	return sc, nil
}
