package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/steering"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// passthrougher is an engine that says when a call needs no steering and
// no response cache.
type passthrougher interface {
	Passthrough(c *steering.Call, p *steering.Plan) bool
}

// relay serves an unsteered request to a backend that speaks the OpenAI
// wire itself: the client's bytes go up with the backend's model name, the
// answer's bytes come back with the client's model name; nothing else is
// decoded or encoded again. It reports whether a stream took the request
// over (and with it finish and release).
func (s *Server) relay(x *exchange, rp backend.RawProxy, req *request) bool {
	ctx, reqID, rctx, cancel, l := x.ctx, x.reqID, x.rctx, x.cancel, x.l
	completion := x.f.idPrefix == completionFormat.idPrefix
	ans, err := rp.Raw(rctx, &backend.RawRequest{Chat: !completion, Body: ctx.PostBody(), Drop: []string{"steering"}, Stream: req.stream, Req: req.backend})
	if err != nil {
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	ctx.Response.Header.Set("X-Steering-Strategy", steering.None)
	model, _ := json.Marshal(req.model) // the client's name, as each answer must say it
	if !req.stream {
		defer ans.Close()
		ctx.SetContentType("application/json")
		ctx.SetStatusCode(fasthttp.StatusOK)
		body, _ := wire.SetValue(ans.Body, "model", model)
		ctx.SetBody(body)
		return false
	}
	// The stream copies the events to the client, each burst as it comes,
	// and ends the relay when the stream is over or the client is gone (a
	// failed write). The disconnect watch ends here: writes find a client
	// that left.
	x.stopWatch()
	// The request has gone up whole: the stream need not hold its body,
	// as large as the prompt, for as long as it lasts.
	ctx.Request.ResetBody()
	l.streamed = true // observe leaves the stream to tell its own end
	var broke error   // why the backend's stream broke off, if it did
	er := eventReaders.Get().(*eventReader)
	er.src.Reset(ans.Stream)
	er.model = model
	er.log = func(err error) {
		broke = err
		s.log.Warn("relayed stream failed after first byte", "request_id", reqID, "err", err)
	}
	er.errEvent = func(err error) []byte {
		_, body := wire.ErrorOf(s.requestErr(rctx, s.relayEnd(rctx, err)))
		b, _ := json.Marshal(body)
		return b
	}
	start, streamStart := x.start, time.Now()
	finish, release := x.finish, x.release
	s.handOff(ctx, func(w io.Writer) error {
		defer func() {
			if !er.done {
				cancel(errClientGone)
				ans.Err = errClientGone
			}
			if broke != nil {
				ans.Err = broke
			}
			ans.Close()
			er.free()
			finish()
			release()
		}()
		_, err := er.WriteTo(w)
		broke = s.relayEnded(rctx, reqID, l, err, broke, start, streamStart)
		return err
	})
	return true
}

// relayEnded counts a relayed stream's end, by why it broke off, if it
// did (which it returns); writeErr is the client's side. On a frame of its
// own, apart from the stream's (TestStreamStackStaysWithin8KiB).
//
//go:noinline
func (s *Server) relayEnded(rctx context.Context, reqID string, l *labels, writeErr, broke error, start, streamStart time.Time) error {
	if broke != nil {
		broke = s.relayEnd(rctx, broke)
	}
	status := s.streamStatus(rctx, writeErr, broke)
	s.metrics.StreamEnd(l.route, l.strategy, status, time.Since(streamStart))
	s.live.publish(s.event(reqID, l.model, l.tenant, status, l, nil, time.Since(start)))
	return broke
}

// relayEnd is why a relayed stream broke off: the request's own end (its
// deadline, the server shutting down) closes the backend's stream under
// the read, or times the read out, and is the reason then, not the read
// it broke. Not inlined: the stream's goroutine keeps a small stack
// (TestStreamStackStaysWithin8KiB), and this runs deep in it.
//
//go:noinline
func (s *Server) relayEnd(rctx context.Context, err error) error {
	if cause := context.Cause(rctx); cause != nil {
		return cause
	}
	if d, ok := rctx.Deadline(); ok && !time.Now().Before(d) {
		return s.errDeadline // the read's own deadline, the request's, ran out first
	}
	return err
}

// eventReader reads a backend's server-sent events and yields them whole,
// each data object with the client's model name. A stream that ends
// without [DONE] gets an error event and [DONE] of its own.
type eventReader struct {
	src      *bufio.Reader
	model    []byte // the client's model name, quoted
	out      []byte
	line     []byte
	done     bool // [DONE] was sent
	ended    bool
	erred    bool // the backend sent an error event: the stream's end needs no second
	errType  bool // the event being read is of type error
	log      func(error)
	errEvent func(error) []byte
}

// eventReaders keep the buffers of relayed streams that have ended for
// the streams after them.
var eventReaders = sync.Pool{New: func() any {
	return &eventReader{src: bufio.NewReaderSize(nil, 1024), out: make([]byte, 0, 512)}
}}

// free gives e's buffers to the next stream; e is not used after. Buffers
// a long event grew are left to the collector.
func (e *eventReader) free() {
	if cap(e.out) > 16<<10 || cap(e.line) > 16<<10 {
		return
	}
	e.src.Reset(nil)
	*e = eventReader{src: e.src, out: e.out[:0], line: e.line[:0]}
	eventReaders.Put(e)
}

// next reads up to the end of the next event (a blank line) into out.
func (e *eventReader) next() {
	for {
		line, err := e.src.ReadSlice('\n')
		if len(e.line) > 0 || err == bufio.ErrBufferFull {
			e.line = append(e.line, line...)
			if err == bufio.ErrBufferFull {
				continue // a long line: keep reading it
			}
			line = e.line
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			e.fail(streamBroken(err))
			return
		}
		// line is the reader's own bytes, or e.line's: either way used up
		// before the next read.
		e.line = e.line[:0]
		if rest, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			e.errType = bytes.Equal(bytes.TrimSpace(rest), []byte("error"))
		} else if bytes.HasPrefix(line, []byte("error:")) {
			line = errorLine(line)
		}
		if payload, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data:")); ok {
			payload = bytes.TrimPrefix(payload, []byte(" ")) // the space after the colon is optional (SSE)
			if bytes.Equal(payload, []byte("[DONE]")) {
				e.out = append(e.out, "data: [DONE]\n\n"...)
				e.ended, e.done = true, true
				return
			}
			if len(payload) > 0 && (payload[0] != '{' || !wire.Valid(payload)) {
				// What a client's SDK could not read goes no further,
				// as a non-streamed answer that is not JSON does not.
				e.fail(fmt.Errorf("%w: the backend sent an event that is not a JSON object", fault.ErrUpstream))
				return
			}
			if (e.errType || bytes.Contains(payload, []byte(`"error"`))) && !e.erred {
				e.noteError(payload)
			}
			if len(payload) > 0 {
				// Rewritten straight into out: no copy of the event
				// of its own, none left for the collector.
				if out, changed := wire.AppendValue(append(e.out, dataPrefix...), payload, "model", e.model); changed {
					e.out = append(out, '\n')
					continue
				}
			}
		}
		e.out = append(e.out, line...)
		if len(bytes.TrimSpace(line)) == 0 {
			e.errType = false // an event's type ends with it
			if !e.whole() {
				return // the event's end: let it go out now
			}
		}
	}
}

// noteError records an error the backend sent in its stream (an error
// object, or the data of an event of type error): the client has it, and
// the stream's end needs no second. Apart from next, whose frame the
// stream's small stack holds.
//
//go:noinline
func (e *eventReader) noteError(payload []byte) {
	msg, ok := errorEvent(payload)
	if !ok && !e.errType {
		return
	}
	if !ok {
		msg = fault.Clip(string(payload), 1024)
	}
	e.erred = true
	e.log(fmt.Errorf("%w: the backend sent an error event: %s", fault.ErrUpstream, msg))
}

// errorLine turns an error line as llama.cpp's server writes one
// ("error: {...}", no SSE field) into the data line of an error event that
// a client's SDK reads: its JSON object as it is, else the text as the
// error's message.
//
//go:noinline
func errorLine(line []byte) []byte {
	payload := bytes.TrimSpace(line[len("error:"):])
	if len(payload) == 0 || payload[0] != '{' || !wire.Valid(payload) {
		payload, _ = json.Marshal(map[string]any{"error": map[string]string{"message": string(payload), "type": "server_error"}})
	}
	if !bytes.Contains(payload, []byte(`"error"`)) {
		payload, _ = json.Marshal(map[string]json.RawMessage{"error": payload})
	}
	return append(append([]byte("data: "), payload...), '\n')
}

// fail ends the stream for err: the events read so far go out, then an
// error event and [DONE]. After the backend's own error event the client
// has its error: the stream only ends.
func (e *eventReader) fail(err error) {
	if !e.erred {
		e.log(err)
		e.out = append(append(append(e.out, "data: "...), e.errEvent(err)...), "\n\n"...)
	}
	e.out = append(e.out, "data: [DONE]\n\n"...)
	e.ended, e.done = true, true
}

// errorEvent reports whether a stream's event is an error, as OpenAI sends
// one ({"error": {"message": …}}, or a non-empty string) or older vLLM
// ({"object": "error", "message": …}), and its message. A null, empty or
// false "error" is none.
func errorEvent(payload []byte) (string, bool) {
	var ev map[string]json.RawMessage
	if json.Unmarshal(payload, &ev) != nil {
		return "", false
	}
	text := func(v json.RawMessage) string { // a string's value, else the JSON as sent
		var s string
		if json.Unmarshal(v, &s) != nil {
			return string(v)
		}
		return s
	}
	if e := ev["error"]; len(e) > 0 {
		switch {
		case e[0] == '{':
			var detail map[string]json.RawMessage
			if json.Unmarshal(e, &detail) == nil && len(detail["message"]) > 0 {
				return text(detail["message"]), true
			}
			return string(e), true
		case e[0] == '"' && text(e) != "":
			return text(e), true
		}
		return "", false
	}
	if text(ev["object"]) == "error" {
		return text(ev["message"]), true
	}
	return "", false
}

// whole reports whether the next event has arrived whole already: then it
// goes out with the one before it, one write for a burst of events, and
// waits for nothing that has not come.
func (e *eventReader) whole() bool {
	b, _ := e.src.Peek(e.src.Buffered())
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\r\n\r\n"))
}

// WriteTo writes event after event, each burst in one write, with no copy
// buffer of its own held while the backend is quiet.
func (e *eventReader) WriteTo(w io.Writer) (int64, error) {
	if e.out == nil {
		e.out = make([]byte, 0, 512) // a token event or two, without regrowing
	}
	var n int64
	for {
		for len(e.out) == 0 {
			if e.ended {
				return n, nil
			}
			e.next()
		}
		k, err := w.Write(e.out)
		n += int64(k)
		e.out = e.out[:0]
		if err != nil {
			return n, err
		}
	}
}

var dataPrefix = []byte("data: ")

// streamBroken is a backend stream that ended early or could not be read.
func streamBroken(err error) error {
	return fmt.Errorf("%w: the backend's stream broke off: %v", fault.ErrUpstream, err)
}
