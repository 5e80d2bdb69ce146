package wire

import (
	"bufio"
	"encoding/json"
)

// WriteEvent writes v as one server-sent event and flushes it.
func WriteEvent(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.WriteString("data: ")
	w.Write(b)
	w.WriteString("\n\n")
	return w.Flush()
}

// WriteDone ends a stream the OpenAI way.
func WriteDone(w *bufio.Writer) error {
	w.WriteString("data: [DONE]\n\n")
	return w.Flush()
}
