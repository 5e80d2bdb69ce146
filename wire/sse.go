package wire

import (
	"bufio"
	"encoding/json"
)

// WriteEvent writes v as one server-sent event and flushes it.
func WriteEvent(w *bufio.Writer, v any) error {
	b, err := marshalEvent(v)
	if err != nil {
		return err
	}
	w.WriteString("data: ")
	w.Write(b)
	w.WriteString("\n\n")
	return w.Flush()
}

// marshalEvent encodes a stream event; a chunk's Extra goes after its
// own members.
func marshalEvent(v any) ([]byte, error) {
	switch c := v.(type) {
	case *ChatChunk:
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		return appendExtra(b, chatChunkKeys, c.Extra), nil
	case *Completion:
		b, err := json.Marshal((*completionFields)(c))
		if err != nil {
			return nil, err
		}
		return appendExtra(b, completionAnswerKeys, c.Extra), nil
	}
	return json.Marshal(v)
}

// WriteDone ends a stream the OpenAI way.
func WriteDone(w *bufio.Writer) error {
	w.WriteString("data: [DONE]\n\n")
	return w.Flush()
}
