package openai

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReadSSE(t *testing.T) {
	in := ": comment\n\ndata: {\"a\":1}\n\nevent: x\ndata: line1\ndata: line2\n\ndata:nospace\n\ndata: [DONE]\n\ndata: after\n\n"
	var got []string
	err := readSSE(strings.NewReader(in), 4<<20, func(_ string, d []byte) error { got = append(got, string(d)); return nil })
	if !errors.Is(err, errDone) {
		t.Fatalf("err %v", err)
	}
	want := []string{`{"a":1}`, "line1\nline2", "nospace"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q, want %q", got, want)
	}
	// A last event without its blank line still counts.
	got = nil
	_ = readSSE(strings.NewReader("data: tail"), 4<<20, func(_ string, d []byte) error { got = append(got, string(d)); return nil })
	if len(got) != 1 || got[0] != "tail" {
		t.Errorf("tail %q", got)
	}
}

// An event's type reaches fn, and ends with the event; llama.cpp's
// error lines are events of type error.
func TestReadSSEEventTypes(t *testing.T) {
	in := "event: ping\n\ndata: a\n\nevent: error\ndata: {\"message\":\"boom\"}\n\ndata: b\n\nerror: {\"error\":{\"message\":\"bad\"}}\n\n"
	var got []string
	err := readSSE(strings.NewReader(in), 4<<20, func(e string, d []byte) error { got = append(got, e+"="+string(d)); return nil })
	want := []string{"message=a", `error={"message":"boom"}`, "message=b", `error={"error":{"message":"bad"}}`}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events %q (%v), want %q", got, err, want)
	}
	// [DONE] ends the stream only as a message.
	got = nil
	err = readSSE(strings.NewReader("event: error\ndata: [DONE]\n\ndata: [DONE]\n\n"), 4<<20, func(e string, d []byte) error { got = append(got, e+"="+string(d)); return nil })
	if !errors.Is(err, errDone) || len(got) != 1 || got[0] != "error=[DONE]" {
		t.Errorf("events %q, %v", got, err)
	}
}

// FuzzReadSSE feeds arbitrary streams to the parser: it must never panic
// or hand out an event that is not in the input.
func FuzzReadSSE(f *testing.F) {
	for _, s := range []string{"data: {}\n\n", "data: [DONE]\n\n", ": x\n\ndata: a\ndata: b\n\n", "data:\n\n", "\r\n\r\n", "data: " + strings.Repeat("x", 100)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = readSSE(bytes.NewReader(in), 4<<20, func(_ string, d []byte) error {
			for _, line := range bytes.Split(d, []byte("\n")) {
				if !bytes.Contains(in, line) {
					t.Fatalf("event line %q is not in the input", line)
				}
			}
			return nil
		})
	})
}
