package openai

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// errDone ends reading at "data: [DONE]".
var errDone = errors.New("done")

// readSSE calls fn with the data of every event in r until [DONE] or EOF.
// Multi-line data is joined with newlines, as the SSE spec says; comments and
// other fields are ignored. One event may be at most maxEventBytes, so that
// a broken upstream cannot make the gateway buffer without limit.
func readSSE(r io.Reader, maxEventBytes int, fn func(data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4<<10), maxEventBytes)
	var data []byte
	have := false
	dispatch := func() error {
		if !have {
			return nil
		}
		d := data
		data, have = data[:0], false
		if bytes.Equal(d, []byte("[DONE]")) {
			return errDone
		}
		return fn(d)
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
		if string(field) != "data" {
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
