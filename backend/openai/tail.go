package openai

import (
	"bytes"
	"io"
	"time"

	"github.com/valyala/fasthttp"
)

// Reading what follows [DONE] is bounded: a backend that keeps its body
// open after it gets tailWait, and one that sends more gets tailBytes read,
// before the connection is given up.
const (
	tailWait  = time.Second
	tailBytes = 4 << 10
)

// endReader passes a streamed answer through and notes whether it ends
// with [DONE]. fasthttp pools a streamed connection only when its body was
// read to the end (the chunked encoding's last chunk, which comes after
// [DONE]); a reader that stops at [DONE] would cost the next call to the
// backend a new connection.
type endReader struct {
	r    io.Reader
	tail [16]byte // the last bytes read
	n    int      // how many of tail are set
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if n >= len(e.tail) {
		e.n = copy(e.tail[:], p[n-len(e.tail):n])
	} else if n > 0 {
		keep := min(e.n, len(e.tail)-n)
		copy(e.tail[:], e.tail[e.n-keep:e.n])
		e.n = keep + copy(e.tail[keep:], p[:n])
	}
	return n, err
}

// ended reports whether what was read so far ends with the [DONE] event.
func (e *endReader) ended() bool {
	t := bytes.TrimRight(e.tail[:e.n], " \r\n")
	return bytes.HasSuffix(t, []byte("data: [DONE]")) || bytes.HasSuffix(t, []byte("data:[DONE]"))
}

// drain reads the body to its end after [DONE], so that the connection
// goes back to the pool; resp is the answer e reads.
func (e *endReader) drain(resp *fasthttp.Response) {
	if !e.ended() {
		return
	}
	fired := make(chan struct{})
	t := time.AfterFunc(tailWait, func() {
		defer close(fired)
		_ = resp.CloseBodyStream() // interrupts the read below
	})
	_, _ = io.Copy(io.Discard, io.LimitReader(e.r, tailBytes))
	if !t.Stop() {
		<-fired // resp is released after this; the timer must be done with it
	}
}
