package wire

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeChat feeds arbitrary bodies to the request decoder and
// validator: they must never panic, and whatever they accept must
// re-encode to JSON that decodes to the same request.
func FuzzDecodeChat(f *testing.F) {
	for _, s := range []string{
		sampleChat,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"stop":"x","n":2}`,
		`{"model":"m","messages":[{"role":"assistant","content":null}],"continue_final_message":true}`,
		`{"model":"m","messages":[],"logprobs":true,"top_logprobs":3,"stream_options":{"include_usage":true}}`,
		`{}`, `[]`, `null`, `{"model":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeChat(body)
		if err != nil {
			return
		}
		br, err := ChatToBackend(r, DefaultLimits)
		if err != nil {
			return
		}
		out, err := Marshal(ChatRequestOf(br, r.Stream), br.Extra)
		if err != nil {
			t.Fatalf("accepted request does not re-encode: %v", err)
		}
		back, err := DecodeChat(out)
		if err != nil {
			t.Fatalf("re-encoded request %s does not decode: %v", out, err)
		}
		if back.Model != r.Model || len(back.Messages) != len(r.Messages) {
			t.Fatalf("round trip changed the request: %s", out)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
	})
}
