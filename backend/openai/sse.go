package openai

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
)

// errDone ends reading at "data: [DONE]".
var errDone = errors.New("done")

// readSSE calls fn with the type and data of every event in r until
// [DONE] or EOF. Multi-line data is joined with newlines, as the SSE spec
// says; comments and other fields are ignored. A line of the field error
// (llama.cpp's server writes its errors so) is read as the data of an
// event of type error. One event may be at most maxEventBytes, so that a
// broken upstream cannot make the gateway buffer without limit.
func readSSE(r io.Reader, maxEventBytes int, fn func(event string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), maxEventBytes)
	var data []byte
	event := ""
	have := false
	dispatch := func() error {
		if !have {
			event = ""
			return nil
		}
		d, e := data, cmp.Or(event, "message")
		data, event, have = data[:0], "", false
		if e == "message" && bytes.Equal(d, []byte("[DONE]")) {
			return errDone
		}
		return fn(e, d)
	}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if err := dispatch(); err != nil {
				return err
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
			continue
		case "error":
			event = "error"
		case "data":
		default:
			continue
		}
		if have {
			data = append(data, '\n')
		}
		data = append(data, value...)
		have = true
		if len(data) > maxEventBytes {
			return fmt.Errorf("server-sent event larger than %d bytes", maxEventBytes)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return dispatch()
}
