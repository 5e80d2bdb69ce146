package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
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

// FuzzUnquote holds the request decoder's own string decoding to
// encoding/json's: for every JSON string, the same text; for what is not
// one, no text.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`"plain"`, `"a\nb\t\"q\" \\ \/ \u00e9"`, `"\ud83d\ude00 \ud800 \ude00\ud83d \ud83dz"`,
		"\"a\xffb\\n\xc3\"", `"\u12"`, `"\x"`, `"a"b"`, "\"\x01\"", `"`, `""`, `"\'"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want string
		jsonErr := json.Unmarshal(b, &want)
		got, ok := unquote(bytes.Trim(b, " \t\r\n")) // as its callers give it
		if jsonErr == nil && (!ok || got != want) {
			t.Fatalf("%q: unquote gives %q (ok %v), encoding/json %q", b, got, ok, want)
		}
		if jsonErr != nil && ok && json.Valid(b) {
			t.Fatalf("%q: unquote reads %q from what encoding/json refuses: %v", b, got, jsonErr)
		}
	})
}

// FuzzValid holds the decoder's validation to json.Valid's verdicts.
func FuzzValid(f *testing.F) {
	for _, s := range []string{sampleChat, `{}`, `[]`, ` 1 `, `-0.5e+10`, `01`, `1.`, `.5`, `-`, `1e`, `"\u12g4"`, `"\'"`,
		"\"\x1f\"", "\"\xff\"", `{"a":}`, `{"a" 1}`, `{,}`, `[1,]`, `[1 2]`, `tru`, `nul`, `true false`, `{"a":[{"b":null}]}`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), ``, ` `, `{"a":1}}`, `[}`, `{]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("%q: Valid %v, json.Valid %v", b, got, want)
		}
	})
}

// FuzzMessagePlain holds the plain message decode to the full one: a
// message it takes decodes the same through encoding/json, with no error.
func FuzzMessagePlain(f *testing.F) {
	for _, s := range []string{`{"role":"user","content":"Why is the sky blue?"}`, ` { "content" : "a\nb" , "role":"system" } `,
		`{"role":"user","content":"\ud83d\ude00 \ud800"}`, "{\"role\":\"user\",\"content\":\"a\xffb\"}", `{"role":"user","role":"x","content":""}`,
		`{"Role":"user","content":"x"}`, `{"role":"user","content":null}`, `{"role":"user","content":[{"type":"text","text":"x"}]}`,
		`{"role":"user","content":"x","name":"n"}`, `{"role":1,"content":"x"}`, `{"r\u006fle":"user","content":"x"}`, `{"role":"user"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !Valid(b) { // what a message decode is given: valid JSON
			return
		}
		var plain Message
		if !plain.decodePlain(b) {
			return
		}
		var full Message
		if err := full.decodeFull(b); err != nil {
			t.Fatalf("%q: the plain decode takes it, the full one refuses it: %v", b, err)
		}
		if !reflect.DeepEqual(plain, full) {
			t.Fatalf("%q: plain decode %#v, full decode %#v", b, plain, full)
		}
	})
}

// FuzzDecodePlain holds the plain decodes of a request's common members
// (chat and completion) to the full decodes: the same request, or the same
// error, for any body.
func FuzzDecodePlain(f *testing.F) {
	for _, s := range []string{sampleChat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"seed":1}`,
		`{"model":"m","messages":[],"stream":true,"n":2,"temperature":0.5,"top_p":1e-3,"user":"u\n","steering":{"strategy":"best_of_n"}}`,
		`{"model":"m","model":"n","messages":[]}`, `{"Model":"m","messages":[]}`, `{"model":"m","messages":null,"max_tokens":1e2}`,
		`{"model":"m","messages":[],"max_tokens":99999999999999999999}`, `{"model":"m","messages":[],"temperature":1e400}`,
		`{"model":null,"messages":[]}`, `{"model":"m","messages":[],"steering":null}`, `{"model":"m","messages":[{"role":1}]}`,
		`{"model":"m","messages":[],"tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}}`,
		`{"model":"m","messages":[],"stream":"yes"}`, `{"model":"m","messages":[],"seed":-0,"logprobs":false,"top_logprobs":3}`,
		`{"model":"m","messages":[],"top_k":5,"Top_K":1}`, `{"model":"m","messages":[],"SEED":1}`, `{"model":"m","messages":[],"x\u0041":1}`,
		"{\"model\":\"m\",\"messages\":[],\"\u212a\":1}", `{"model":"m","messages":[],"vendor":{"a":[1,2]},"top_k":null}`,
		`{"model":"m","prompt":"Once upon","max_tokens":8,"echo":true,"logprobs":2,"best_of":3}`, `{"model":"m","prompt":["a","b"]}`,
		`{"model":"m","prompt":null}`, `{"model":"m","prompt":"x","PROMPT":"y"}`, `{"model":"m","prompt":"x","logprobs":true}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		samePlain(t, b, decodeChat)
		samePlain(t, b, decodeCompletion)
	})
}

// samePlain fails t where decode gives b a different result or error with
// the plain decode than without.
func samePlain[R any](t *testing.T, b []byte, decode func([]byte, bool) (R, error)) {
	got, gotErr := decode(b, true)
	want, wantErr := decode(b, false)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%q: plain decode's error %v, full decode's %v", b, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: plain decode %#v, full decode %#v", b, got, want)
	}
}
