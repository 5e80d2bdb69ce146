package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// writes hands on each write it is given.
type writes chan string

func (w writes) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// Events that have come whole go out in one write; one still arriving is
// not waited for.
func TestEventReaderSendsWhatHasCome(t *testing.T) {
	pr, pw := io.Pipe()
	er := &eventReader{src: bufio.NewReaderSize(pr, 1024), model: []byte(`"client"`),
		log: func(error) {}, errEvent: func(error) []byte { return []byte(`{}`) }}
	got := make(writes, 8)
	go er.WriteTo(got)
	read := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("a read waited for what had not come")
			return ""
		}
	}
	go pw.Write([]byte("data: {\"model\":\"up\",\"a\":1}\n\ndata: {\"a\":2}\n\n"))
	if got, want := read(), "data: {\"model\":\"client\",\"a\":1}\n\ndata: {\"a\":2}\n\n"; got != want {
		t.Errorf("a burst: %q, want %q", got, want)
	}
	go pw.Write([]byte("data: {\"a\":3}\n\ndata: {\"a\""))
	if got, want := read(), "data: {\"a\":3}\n\n"; got != want {
		t.Errorf("one whole event and part of the next: %q, want %q", got, want)
	}
	go func() {
		pw.Write([]byte(":4}\n\ndata: [DONE]\n\n"))
		pw.Close()
	}()
	if got, want := read(), "data: {\"a\":4}\n\ndata: [DONE]\n\n"; got != want {
		t.Errorf("the rest: %q, want %q", got, want)
	}
}

// BenchmarkRelayEvents is the relay's work on one stream of 40 token
// events, each given the client's model name, written to a client that
// takes every write.
func BenchmarkRelayEvents(b *testing.B) {
	var stream bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&stream, "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"upstream-model\","+
			"\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token%d\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n", i)
	}
	stream.WriteString("data: [DONE]\n\n")
	src := bufio.NewReaderSize(nil, 1024)
	r := bytes.NewReader(stream.Bytes())
	b.SetBytes(int64(stream.Len()))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(stream.Bytes())
		src.Reset(r)
		er := eventReader{src: src, model: []byte(`"client"`), log: func(error) {}, errEvent: func(error) []byte { return nil }}
		if _, err := er.WriteTo(io.Discard); err != nil || !er.done {
			b.Fatal(err, er.done)
		}
	}
}

// An event longer than the reader's buffer, arriving in pieces, goes out
// whole with the client's model name, and lines ended by CRLF keep theirs.
func TestEventReaderLongEvent(t *testing.T) {
	long := strings.Repeat("word ", 600)
	in := "data: {\"model\":\"up\",\"content\":\"" + long + "\"}\n\n" + ": a comment\r\n\r\ndata: [DONE]\n\n"
	pr, pw := io.Pipe()
	go func() {
		for rest := in; rest != ""; {
			k := min(len(rest), 700)
			_, _ = pw.Write([]byte(rest[:k]))
			rest = rest[k:]
		}
		pw.Close()
	}()
	er := &eventReader{src: bufio.NewReaderSize(pr, 1024), model: []byte(`"client"`),
		log: func(err error) { t.Errorf("logged %v", err) }, errEvent: func(error) []byte { return []byte(`{}`) }}
	var out bytes.Buffer
	if _, err := er.WriteTo(&out); err != nil || !er.done {
		t.Fatal(err, er.done)
	}
	want := strings.Replace(in, `"up"`, `"client"`, 1)
	if out.String() != want {
		t.Errorf("got  %q\nwant %q", out.String(), want)
	}
}

// An event that is not a JSON object ends the stream with an error event,
// as a non-streamed answer that is not JSON is a 502: a client's SDK would
// fail on it.
func TestEventReaderRefusesWhatIsNotJSON(t *testing.T) {
	for _, bad := range []string{`{not json`, `[1,2]`, `"text"`, `{"model":"up","a":1`} {
		var logged error
		er := &eventReader{src: bufio.NewReader(strings.NewReader("data: {\"a\":1}\n\ndata: " + bad + "\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n")),
			model: []byte(`"client"`), log: func(err error) { logged = err }, errEvent: func(error) []byte { return []byte(`{"error":{}}`) }}
		var out bytes.Buffer
		if _, err := er.WriteTo(&out); err != nil || !er.done {
			t.Fatal(err, er.done)
		}
		if want := "data: {\"a\":1}\n\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n"; out.String() != want {
			t.Errorf("%s: relayed %q, want %q", bad, out.String(), want)
		}
		if logged == nil || !strings.Contains(logged.Error(), "not a JSON object") {
			t.Errorf("%s: logged %v", bad, logged)
		}
	}
}

// A backend's own error event goes to the client as it came and marks the
// stream failed; a stream that then ends without [DONE] gets [DONE] only,
// not a second error event.
func TestEventReaderBackendErrorEvent(t *testing.T) {
	for _, c := range []struct{ name, in, want, logged string }{
		{"openai, then EOF", "data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
			"data: {\"a\":1}\n\ndata: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n", "overloaded"},
		{"openai, then [DONE]", "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n",
			"data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n", "overloaded"},
		{"old vLLM, then EOF", "data: {\"object\":\"error\",\"message\":\"old vllm\",\"code\":400}\n\n",
			"data: {\"object\":\"error\",\"message\":\"old vllm\",\"code\":400}\n\ndata: [DONE]\n\n", "old vllm"},
		{"a string", "data: {\"error\":\"bad things\"}\n\n", "data: {\"error\":\"bad things\"}\n\ndata: [DONE]\n\n", "bad things"},
		{"a token that says error", "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"error\\\"\"}}],\"error\":null}\n\ndata: [DONE]\n\n",
			"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"error\\\"\"}}],\"error\":null}\n\ndata: [DONE]\n\n", ""},
		{"no error event, then EOF", "data: {\"a\":1}\n\n", "data: {\"a\":1}\n\ndata: {\"error\":{}}\n\ndata: [DONE]\n\n", "broke off"},
		{"an error of other shapes", "data: {\"object\":1,\"error\":{\"message\":\"real\",\"code\":503}}\n\n",
			"data: {\"object\":1,\"error\":{\"message\":\"real\",\"code\":503}}\n\ndata: [DONE]\n\n", "real"},
		{"an error without a message", "data: {\"error\":{\"code\":503}}\n\n", "data: {\"error\":{\"code\":503}}\n\ndata: [DONE]\n\n", `{"code":503}`},
		{"old vLLM with an object message", "data: {\"object\":\"error\",\"message\":{\"detail\":\"x\"}}\n\n",
			"data: {\"object\":\"error\",\"message\":{\"detail\":\"x\"}}\n\ndata: [DONE]\n\n", `{"detail":"x"}`},
		{"empty or false errors are none", "data: {\"error\":\"\",\"a\":1}\n\ndata: {\"error\":false}\n\ndata: [DONE]\n\n",
			"data: {\"error\":\"\",\"a\":1}\n\ndata: {\"error\":false}\n\ndata: [DONE]\n\n", ""},
		{"no space after data:", "data:{\"model\":\"up\",\"a\":1}\n\ndata:{\"error\":{\"message\":\"tight\"}}\n\ndata:[DONE]\n\n",
			"data: {\"model\":\"client\",\"a\":1}\n\ndata:{\"error\":{\"message\":\"tight\"}}\n\ndata: [DONE]\n\n", "tight"},
		{"an event of type error, then [DONE]", "data: {\"a\":1}\n\nevent: error\ndata: {\"message\":\"boom\"}\n\ndata: [DONE]\n\n",
			"data: {\"a\":1}\n\nevent: error\ndata: {\"message\":\"boom\"}\n\ndata: [DONE]\n\n", "boom"},
		{"an event type ends with its event", "event: ping\ndata: {\"a\":1}\n\nevent: error\n\ndata: {\"message\":\"fine\"}\n\ndata: [DONE]\n\n",
			"event: ping\ndata: {\"a\":1}\n\nevent: error\n\ndata: {\"message\":\"fine\"}\n\ndata: [DONE]\n\n", ""},
		{"llama.cpp's error line, then EOF", "data: {\"a\":1}\n\nerror: {\"error\":{\"code\":500,\"message\":\"oom\",\"type\":\"server_error\"}}\n\n",
			"data: {\"a\":1}\n\ndata: {\"error\":{\"code\":500,\"message\":\"oom\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n", "oom"},
		{"an error line of text", "error: out of memory\n\n",
			"data: {\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n", "out of memory"},
	} {
		var logged []error
		er := &eventReader{src: bufio.NewReader(strings.NewReader(c.in)), model: []byte(`"client"`),
			log: func(err error) { logged = append(logged, err) }, errEvent: func(error) []byte { return []byte(`{"error":{}}`) }}
		var out bytes.Buffer
		if _, err := er.WriteTo(&out); err != nil || !er.done {
			t.Fatal(c.name, err, er.done)
		}
		if out.String() != c.want {
			t.Errorf("%s: relayed %q, want %q", c.name, out.String(), c.want)
		}
		switch {
		case c.logged == "" && len(logged) > 0:
			t.Errorf("%s: logged %v", c.name, logged)
		case c.logged != "" && (len(logged) != 1 || !strings.Contains(logged[0].Error(), c.logged)):
			t.Errorf("%s: logged %v, want one error with %q", c.name, logged, c.logged)
		}
	}
}
