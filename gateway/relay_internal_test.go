package gateway

import (
	"bufio"
	"io"
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
