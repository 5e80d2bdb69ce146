package reference

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// ServerVersion is what the Ollama face reports on /api/version: the Ollama
// wire format it follows.
const ServerVersion = "0.17.4"

// Server serves a reference Backend over HTTP in both the Ollama wire
// format (/api/...) and the OpenAI one (/v1/..., with vLLM's extensions:
// native n, continue_final_message, echo scoring), for tests, benchmarks and
// demos.
type Server struct {
	b   *Backend
	srv *fasthttp.Server
}

// NewServer returns a server over b.
func NewServer(b *Backend) *Server {
	s := &Server{b: b}
	s.srv = &fasthttp.Server{Handler: s.handle, Name: "steergate-reference", NoDefaultServerHeader: true,
		IdleTimeout: time.Minute, CloseOnShutdown: true}
	return s
}

// Serve serves on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.ShutdownWithContext(sctx)
		// fasthttp closes only the listeners Serve had registered; one it
		// had not reached yet, cancelled at once, is closed here.
		_ = ln.Close()
		return <-errc
	}
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	switch string(ctx.Path()) {
	case "/", "/api/version":
		if string(ctx.Path()) == "/" {
			ctx.SetBodyString("Ollama is running")
			return
		}
		jsonBody(ctx, 200, map[string]string{"version": ServerVersion})
	case "/api/tags":
		jsonBody(ctx, 200, api.ListResponse{Models: []api.ListModelResponse{{
			Name: ModelName + ":latest", Model: ModelName + ":latest", ModifiedAt: time.Unix(0, 0).UTC(),
			Details: api.ModelDetails{Format: "embedded", Family: "ngram"}}}})
	case "/api/chat":
		s.ollama(ctx, true)
	case "/api/generate":
		s.ollama(ctx, false)
	case "/v1/models":
		jsonBody(ctx, 200, wire.ModelList{Object: "list", Data: []wire.Model{{ID: ModelName, Object: "model", OwnedBy: "steergate"}}})
	case "/v1/chat/completions":
		s.openaiChat(ctx)
	case "/v1/completions":
		s.openaiCompletion(ctx)
	default:
		ctx.Error("404 page not found", 404)
	}
}

func jsonBody(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

// statusOf is the HTTP status an error earns, by the gateway's own table.
func statusOf(err error) int {
	status, _ := wire.ErrorOf(err)
	return status
}

// --- Ollama face ---

func ollamaErr(ctx *fasthttp.RequestCtx, status int, msg string) {
	jsonBody(ctx, status, map[string]string{"error": msg})
}

// ollamaOptions reads Ollama's options map. Unset options take Ollama's own
// defaults (temperature 0.8, top_k 40, top_p 0.9), as a real server would.
func ollamaOptions(opts map[string]any, r *backend.Request) error {
	temp, topP, topK := 0.8, 0.9, 40.0
	num := func(k string, dst *float64) error {
		v, ok := opts[k]
		if !ok {
			return nil
		}
		f, ok := v.(float64)
		if !ok {
			return fmt.Errorf("option %q must be a number", k)
		}
		*dst = f
		return nil
	}
	seed, predict := math.NaN(), -1.0
	for k, dst := range map[string]*float64{"temperature": &temp, "top_p": &topP, "top_k": &topK, "seed": &seed, "num_predict": &predict} {
		if err := num(k, dst); err != nil {
			return err
		}
	}
	r.Temperature, r.TopP = &temp, &topP
	r.Extra = map[string]json.RawMessage{"top_k": json.RawMessage(fmt.Sprint(int(topK)))}
	if !math.IsNaN(seed) && seed >= 0 {
		s := int64(seed)
		r.Seed = &s
	}
	if predict > 0 {
		r.MaxTokens = int(predict)
	}
	if st, ok := opts["stop"].([]any); ok {
		for _, x := range st {
			if s, ok := x.(string); ok {
				r.Stop = append(r.Stop, s)
			}
		}
	}
	return nil
}

// unservedChat names the first field of an Ollama chat request that the
// reference model cannot serve: it reads text only, so tools, images,
// thinking and a JSON format are refused, not ignored.
func unservedChat(req *api.ChatRequest) string {
	switch {
	case len(req.Tools) > 0:
		return "tools"
	case unservedFormat(req.Format):
		return "format"
	case req.Think != nil && req.Think.Bool():
		return "think"
	}
	for i, m := range req.Messages {
		switch {
		case len(m.Images) > 0:
			return fmt.Sprintf("messages[%d].images", i)
		case len(m.ToolCalls) > 0:
			return fmt.Sprintf("messages[%d].tool_calls", i)
		case m.Thinking != "":
			return fmt.Sprintf("messages[%d].thinking", i)
		case m.Role == "tool" || m.ToolName != "" || m.ToolCallID != "":
			return fmt.Sprintf("messages[%d]: tool results", i)
		}
	}
	return ""
}

// unservedGenerate does so for a generate request.
func unservedGenerate(req *api.GenerateRequest) string {
	switch {
	case len(req.Images) > 0:
		return "images"
	case unservedFormat(req.Format):
		return "format"
	case req.Think != nil && req.Think.Bool():
		return "think"
	case req.Suffix != "":
		return "suffix"
	case req.Template != "":
		return "template"
	case len(req.Context) > 0:
		return "context"
	case req.Width != 0 || req.Height != 0 || req.Steps != 0:
		return "image generation"
	}
	return ""
}

// unservedFormat reports a format other than none.
func unservedFormat(f json.RawMessage) bool {
	f = bytes.TrimSpace(f)
	return len(f) > 0 && string(f) != "null" && string(f) != `""`
}

func (s *Server) ollama(ctx *fasthttp.RequestCtx, chat bool) {
	body := ctx.PostBody()
	if len(body) == 0 {
		ollamaErr(ctx, 400, "missing request body")
		return
	}
	var (
		r      backend.Request
		model  string
		stream *bool
		opts   map[string]any
		debug  bool
	)
	if chat {
		var req api.ChatRequest
		if err := json.Unmarshal(body, &req); err != nil {
			ollamaErr(ctx, 400, err.Error())
			return
		}
		if field := unservedChat(&req); field != "" {
			ollamaErr(ctx, 400, "the reference model does not support "+field)
			return
		}
		model, stream, opts, debug = req.Model, req.Stream, req.Options, req.DebugRenderOnly
		r.Logprobs, r.TopLogprobs = req.Logprobs, req.TopLogprobs
		for _, m := range req.Messages {
			r.Messages = append(r.Messages, backend.Message{Role: m.Role, Content: m.Content})
		}
		if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == "assistant" {
			r.Continue = true // Ollama continues a trailing assistant message
		}
	} else {
		var req api.GenerateRequest
		if err := json.Unmarshal(body, &req); err != nil {
			ollamaErr(ctx, 400, err.Error())
			return
		}
		if req.Raw && (req.Template != "" || req.System != "" || len(req.Context) > 0) {
			ollamaErr(ctx, 400, "raw mode does not support template, system, or context")
			return
		}
		if field := unservedGenerate(&req); field != "" {
			ollamaErr(ctx, 400, "the reference model does not support "+field)
			return
		}
		model, stream, opts, debug = req.Model, req.Stream, req.Options, req.DebugRenderOnly
		r.Logprobs, r.TopLogprobs = req.Logprobs, req.TopLogprobs
		switch {
		case req.Raw:
			r.Prompt = req.Prompt
		case req.System != "":
			r.Messages = []backend.Message{{Role: "system", Content: req.System}, {Role: "user", Content: req.Prompt}}
		default:
			r.Messages = []backend.Message{{Role: "user", Content: req.Prompt}}
		}
	}
	if r.TopLogprobs < 0 || r.TopLogprobs > 20 {
		ollamaErr(ctx, 400, "top_logprobs must be between 0 and 20")
		return
	}
	if model != ModelName && model != ModelName+":latest" {
		ollamaErr(ctx, 404, fmt.Sprintf("model '%s' not found", model))
		return
	}
	if err := ollamaOptions(opts, &r); err != nil {
		ollamaErr(ctx, 400, err.Error())
		return
	}
	if debug {
		rendered := r.Prompt
		if r.Messages != nil {
			rendered = Render(r.Messages, r.Continue)
		}
		jsonBody(ctx, 200, map[string]any{"model": model, "created_at": time.Now().UTC(),
			"message": api.Message{}, "done": false, "_debug_info": api.DebugInfo{RenderedTemplate: rendered}})
		return
	}
	start := time.Now()
	mk := func(text string, d *backend.Delta, g *backend.Generation) any {
		done := g != nil
		var lps []api.Logprob
		if d != nil {
			lps = ollamaLogprobs(d.Logprobs)
		}
		var reason string
		var metrics api.Metrics
		if done {
			reason = g.Choices[0].FinishReason
			metrics = api.Metrics{TotalDuration: time.Since(start), PromptEvalCount: g.Usage.PromptTokens, EvalCount: g.Usage.CompletionTokens}
			if d == nil && g.Choices[0].Logprobs != nil && stream != nil && !*stream {
				// The one object of an answer not streamed carries every
				// logprob; a stream's last carries none of its own, as
				// Ollama's (its pieces carried them).
				lps = ollamaLogprobs(g.Choices[0].Logprobs)
			}
		}
		if chat {
			return api.ChatResponse{Model: model, CreatedAt: time.Now().UTC(), Message: api.Message{Role: "assistant", Content: text},
				Done: done, DoneReason: reason, Logprobs: lps, Metrics: metrics}
		}
		return api.GenerateResponse{Model: model, CreatedAt: time.Now().UTC(), Response: text, Done: done, DoneReason: reason,
			Logprobs: lps, Metrics: metrics}
	}
	if stream != nil && !*stream {
		g, err := s.b.Generate(context.Background(), &r)
		if err != nil {
			ollamaErr(ctx, statusOf(err), err.Error())
			return
		}
		jsonBody(ctx, 200, mk(g.Choices[0].Text, nil, g))
		return
	}
	ctx.SetContentType("application/x-ndjson")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		rctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		enc := json.NewEncoder(w)
		g, err := s.b.Stream(rctx, &r, func(d backend.Delta) error {
			if d.Text == "" && d.Logprobs == nil {
				return nil // the final object carries the finish reason
			}
			if err := enc.Encode(mk(d.Text, &d, nil)); err != nil {
				return err
			}
			return w.Flush()
		})
		if err != nil {
			_ = enc.Encode(map[string]string{"error": err.Error()})
			_ = w.Flush()
			return
		}
		_ = enc.Encode(mk("", nil, g))
		_ = w.Flush()
	})
}

func ollamaLogprobs(lps []backend.TokenLogprob) []api.Logprob {
	if lps == nil {
		return nil
	}
	out := make([]api.Logprob, len(lps))
	for i, lp := range lps {
		out[i] = api.Logprob{TokenLogprob: api.TokenLogprob{Token: lp.Token, Logprob: lp.Logprob, Bytes: byteInts(lp.Token)}}
		for _, t := range lp.Top {
			out[i].TopLogprobs = append(out[i].TopLogprobs, api.TokenLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: byteInts(t.Token)})
		}
	}
	return out
}

func byteInts(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

// --- OpenAI face ---

func openaiErr(ctx *fasthttp.RequestCtx, err error) {
	status, body := wire.ErrorOf(err)
	jsonBody(ctx, status, body)
}

var serverLimits = wire.Limits{MaxN: 128, MaxStop: 16, MaxTopLogprobs: 20}

func (s *Server) openaiChat(ctx *fasthttp.RequestCtx) {
	req, err := wire.DecodeChat(ctx.PostBody())
	if err == nil {
		var r *backend.Request
		if r, err = wire.ChatToBackend(req, serverLimits); err == nil {
			// Like llama.cpp and Ollama, continue a trailing assistant
			// message unless told to add a generation prompt.
			last := r.Messages[len(r.Messages)-1]
			if last.Role == "assistant" && (req.AddGenerationPrompt == nil || !*req.AddGenerationPrompt) {
				r.Continue = true
			}
			s.openaiRun(ctx, req.Model, r, req.Stream, req.StreamOptions, true)
			return
		}
	}
	openaiErr(ctx, err)
}

func (s *Server) openaiCompletion(ctx *fasthttp.RequestCtx) {
	req, err := wire.DecodeCompletion(ctx.PostBody())
	if err != nil {
		openaiErr(ctx, err)
		return
	}
	if req.Echo && req.MaxTokens != nil && *req.MaxTokens == 0 && len(req.Prompt) == 1 {
		s.echoScore(ctx, req)
		return
	}
	r, err := wire.CompletionToBackend(req, serverLimits)
	if err != nil {
		openaiErr(ctx, err)
		return
	}
	s.openaiRun(ctx, req.Model, r, req.Stream, req.StreamOptions, false)
}

// echoScore answers vLLM's scoring idiom (echo with max_tokens 0): the
// logprob of every prompt token after the ones before it; the first has
// none. The model reads a prompt's topic from all of it, and an echo does
// not say where the prompt ends: each token is scored as a completion of
// the text before it would be, that text its prompt.
func (s *Server) echoScore(ctx *fasthttp.RequestCtx, req *wire.CompletionRequest) {
	prompt := req.Prompt[0]
	toks := Split(prompt)
	lps := []backend.TokenLogprob{}
	off := 0
	for i, tok := range toks {
		if i > 0 {
			one, err := s.b.TokenLogprobs(context.Background(), &backend.Request{Prompt: prompt[:off]}, tok)
			if err != nil {
				openaiErr(ctx, err)
				return
			}
			lp := backend.TokenLogprob{Token: tok}
			for _, o := range one { // one token, unless it splits alone
				lp.Logprob += o.Logprob
			}
			lps = append(lps, lp)
		} else {
			lps = append(lps, backend.TokenLogprob{Token: tok})
		}
		off += len(tok)
	}
	out := wire.LegacyLogprobs(lps, 0)
	tl := make([]*float64, len(out.TokenLogprobs))
	for i := range tl {
		if i > 0 {
			tl[i] = &out.TokenLogprobs[i]
		}
	}
	f := backend.FinishLength
	jsonBody(ctx, 200, map[string]any{
		"id": "cmpl-ref", "object": wire.ObjectCompletion, "created": time.Now().Unix(), "model": req.Model,
		"choices": []map[string]any{{"index": 0, "text": prompt, "finish_reason": f, "logprobs": map[string]any{
			"tokens": out.Tokens, "token_logprobs": tl, "top_logprobs": nil, "text_offset": out.TextOffset}}},
		"usage": wire.Usage{PromptTokens: len(toks), TotalTokens: len(toks)},
	})
}

func (s *Server) openaiRun(ctx *fasthttp.RequestCtx, model string, r *backend.Request, stream bool, so *wire.StreamOptions, chat bool) {
	if model != ModelName && model != ModelName+":latest" {
		openaiErr(ctx, &fault.ParamError{Param: "model", Msg: fmt.Sprintf("The model `%s` does not exist.", model), Err: fault.ErrNotFound})
		return
	}
	r.Model = ModelName
	id, created := "chatcmpl-ref", time.Now().Unix()
	if !chat {
		id = "cmpl-ref"
	}
	if !stream {
		g, err := s.b.Generate(context.Background(), r)
		if err != nil {
			openaiErr(ctx, err)
			return
		}
		if chat {
			jsonBody(ctx, 200, wire.Chat(id, model, created, g))
		} else {
			jsonBody(ctx, 200, wire.CompletionOf(id, model, created, g))
		}
		return
	}
	ctx.SetContentType("text/event-stream")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		rctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		seen := map[int]int{}
		write := func(v any) error { return wire.WriteEvent(w, v) }
		g, err := s.b.Stream(rctx, r, func(d backend.Delta) error {
			off, ok := seen[d.Index]
			seen[d.Index] = off + len(d.Text)
			if chat {
				return write(wire.ChatChunkOf(id, model, created, d, !ok))
			}
			return write(wire.CompletionChunkOf(id, model, created, d, off))
		})
		if err != nil {
			_ = write(wire.ErrorBody{Error: wire.ErrorDetail{Message: err.Error(), Type: "server_error"}})
			return
		}
		if so != nil && so.IncludeUsage {
			if chat {
				_ = write(wire.ChatUsageChunk(id, model, created, g))
			} else {
				_ = write(wire.CompletionUsageChunk(id, model, created, g))
			}
		}
		_ = wire.WriteDone(w)
	})
}

// Address formats a listener address as a base URL.
func Address(ln net.Listener) string {
	return "http://" + strings.TrimPrefix(ln.Addr().String(), "[::]")
}
