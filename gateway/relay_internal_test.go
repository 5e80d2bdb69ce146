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
