package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

const sampleChat = `{"model":"reference","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"seed":1,"temperature":0.7,"stream":false,"top_k":5,"vendor":{"a":[1,2]}}`

func TestDecodeChatKeepsUnknownFields(t *testing.T) {
	r, err := DecodeChat([]byte(sampleChat))
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "reference" || len(r.Messages) != 2 || *r.MaxTokens != 16 || *r.Seed != 1 || *r.Temperature != 0.7 {
		t.Errorf("decoded %+v", r)
	}
	if string(r.Extra["top_k"]) != "5" || string(r.Extra["vendor"]) != `{"a":[1,2]}` || len(r.Extra) != 2 {
		t.Errorf("extra %v", r.Extra)
	}
	out, err := Marshal(r, r.Extra)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]json.RawMessage
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if string(back["vendor"]) != `{"a":[1,2]}` || string(back["top_k"]) != "5" || string(back["model"]) != `"reference"` {
		t.Errorf("re-encoded %s", out)
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	const hi = `"messages":[{"role":"user","content":"hi"}]`
	for body, param := range map[string]string{
		`{"model":"m","messages":[],"seed":"x"}`:   "seed",
		`{"model":"m","messages":[],"stop":5}`:     "stop",
		`{"model":"m","messages":[],"n":1.5}`:      "n",
		`{"model":"m","messages":{"role":"user"}}`: "messages",
		`[1,2]`: "",
		`{"model":"m","messages":[{"content":true}]}`: "messages[0].content",
		`{"model":5,` + hi + `}`:                      "model",
		`{"model":"m",` + hi + `,"tools":"x"}`:        "tools",
		`{"model":"m",` + hi + `,"tools":[1]}`:        "tools[0]",
		`{"model":"m",` + hi + `,"tools":[{"type":"function","function":{"name":"f"}},{"type":1}]}`:  "tools[1].type",
		`{"model":"m",` + hi + `,"tools":[{"type":"function","function":{"name":2}}]}`:               "tools[0].function.name",
		`{"model":"m",` + hi + `,"response_format":"x"}`:                                             "response_format",
		`{"model":"m",` + hi + `,"response_format":{"type":"json_schema","json_schema":{"name":5}}}`: "response_format.json_schema.name",
		// A message's error is told before a wrong type elsewhere, where
		// ever it stands.
		`{"model":"m","temperature":"x","messages":[{"role":"user","content":5}]}`: "messages[0].content",
		`{"model":"m","messages":[{"role":"user","content":5}],"temperature":"x"}`: "messages[0].content",
		`{"model":"m",` + hi + `,"temperature":"x"}`:                               "temperature",
	} {
		_, err := DecodeChat([]byte(body))
		if err == nil {
			t.Errorf("%s: decoded", body)
			continue
		}
		if got := fault.Param(err); got != param {
			t.Errorf("%s: %v names %q, want %q", body, err, got, param)
		}
	}
}

// Every error names the member by its whole path, index included, and
// says in JSON's words, never Go's, what was wrong: keys that repeat, in
// any letter case and at any depth, and values of the wrong type.
func TestDecodeErrorsSayWhereAndWhat(t *testing.T) {
	const m = `"model":"m","messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct{ body, param, msg string }{
		{`{` + m + `,"max_tokens":1.5}`, "max_tokens", "invalid type for 'max_tokens': expected an integer, got the number 1.5"},
		{`{` + m + `,"max_tokens":true}`, "max_tokens", "invalid type for 'max_tokens': expected an integer, got a boolean"},
		{`{` + m + `,"temperature":1e400}`, "temperature", "invalid value for 'temperature': the number 1e400 is out of range"},
		{`{` + m + `,"seed":99999999999999999999}`, "seed", "invalid value for 'seed': the number 99999999999999999999 is out of range"},
		{`{` + m + `,"stop":{}}`, "stop", "invalid type for 'stop': expected a string or an array of strings, got an object"},
		{`{` + m + `,"stop":["a",1]}`, "stop", "invalid type for 'stop': expected a string or an array of strings, got an array that is not all strings"},
		{`{` + m + `,"tools":5}`, "tools", "invalid type for 'tools': expected an array, got a number"},
		{`{` + m + `,"tools":[{"type":"function","function":{"name":"a"}},5]}`, "tools[1]", "invalid type for 'tools[1]': expected an object, got a number"},
		{`{` + m + `,"tools":[{"type":"function","function":{"name":"a"},"Function":{"name":"b"}}]}`, "tools[0].Function",
			`tools[0]: fields "function" and "Function" differ only in letter case`},
		{`{` + m + `,"tools":[{"type":"function","Function":{"name":"b"}}]}`, "tools[0].function",
			`tools[0]: unknown field "Function": field names are case-sensitive (did you mean "function"?)`},
		{`{` + m + `,"tools":[{"type":"function","function":{"name":"a","name":"b"}}]}`, "tools[0].function.name",
			`tools[0].function: field "name" appears twice`},
		{`{` + m + `,"response_format":{"type":"text","Type":"json_object"}}`, "response_format.Type",
			`response_format: fields "type" and "Type" differ only in letter case`},
		{`{` + m + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","Name":"y"}}}`, "response_format.json_schema.Name",
			`response_format.json_schema: fields "name" and "Name" differ only in letter case`},
		{`{` + m + `,"response_format":{"type":"json_schema","json_schema":5}}`, "response_format.json_schema",
			"invalid type for 'response_format.json_schema': expected an object, got a number"},
		{`{` + m + `,"stream":true,"stream_options":5}`, "stream_options", "invalid type for 'stream_options': expected an object, got a number"},
		{`{` + m + `,"stream":true,"stream_options":{"include_usage":"yes"}}`, "stream_options.include_usage",
			"invalid type for 'stream_options.include_usage': expected true or false, got a string"},
		{`{` + m + `,"stream":true,"stream_options":{"include_usage":true,"Include_Usage":false}}`, "stream_options.Include_Usage",
			`stream_options: fields "include_usage" and "Include_Usage" differ only in letter case`},
		{`{"model":"m","messages":[{"role":"assistant","content":"","tool_calls":[5]}]}`, "messages[0].tool_calls[0]",
			"invalid type for 'messages[0].tool_calls[0]': expected an object, got a number"},
		{`{"model":"m","messages":[{"role":"assistant","content":"","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}","Arguments":"{}"}}]}]}`,
			"messages[0].tool_calls[0].function.Arguments", `messages[0].tool_calls[0].function: fields "arguments" and "Arguments" differ only in letter case`},
		{`{"model":"m","messages":[{"role":"assistant","content":"","tool_calls":[{"id":"a","ID":"b","type":"function","function":{"name":"f"}}]}]}`,
			"messages[0].tool_calls[0].ID", `messages[0].tool_calls[0]: fields "id" and "ID" differ only in letter case`},
		{`{"model":"m","messages":[{"role":"user","content":[5]}]}`, "messages[0].content[0]",
			"invalid type for 'messages[0].content[0]': expected an object, got a number"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":5}]}]}`, "messages[0].content[0].text",
			"invalid type for 'messages[0].content[0].text': expected a string, got a number"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","Text":"b"}]}]}`, "messages[0].content[0].Text",
			`messages[0].content[0]: fields "text" and "Text" differ only in letter case`},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"text":"b"}]}]}`, "messages[0].content[1].type",
			"messages[0].content[1]: a content part needs a type"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text",
			"messages[0].content[0]: a text part needs a text string"},
		{`{"model":"m","messages":[{"role":"user","content":"x","name":5}]}`, "messages[0].name",
			"invalid type for 'messages[0].name': expected a string, got a number"},
	} {
		_, err := DecodeChat([]byte(c.body))
		if err == nil {
			t.Errorf("%s: decoded", c.body)
			continue
		}
		if got := fault.Param(err); got != c.param {
			t.Errorf("%s: names %q, want %q", c.body, got, c.param)
		}
		if err.Error() != c.msg {
			t.Errorf("%s:\n got %s\nwant %s", c.body, err, c.msg)
		}
	}
	for body, msg := range map[string]string{
		`{"model":"m","prompt":5}`:           "invalid type for 'prompt': expected a string or an array of strings, got a number",
		`{"model":"m","prompt":"x","n":"2"}`: "invalid type for 'n': expected an integer, got a string",
	} {
		_, err := DecodeCompletion([]byte(body))
		if err == nil || err.Error() != msg {
			t.Errorf("%s: %v, want %s", body, err, msg)
		}
	}
}

// stream_options is read by hand (a stream's stack has no room for
// encoding/json there): what it reads must be what encoding/json would.
func TestStreamOptionsDecode(t *testing.T) {
	for body, want := range map[string]bool{
		`{"include_usage":true}`:  true,
		`{"include_usage":false}`: false,
		`{"include_usage":null}`:  false,
		`{ "other" : [1,{"include_usage":false}] , "include_usage" : true }`: true,
		`{"include_us\u0061ge":true}`:                                        true,
		`{}`:                                                                 false,
	} {
		var o StreamOptions
		if err := o.UnmarshalJSON([]byte(body)); err != nil || o.IncludeUsage != want {
			t.Errorf("%s: %v %v, want %v", body, o.IncludeUsage, err, want)
		}
		var std struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if err := json.Unmarshal([]byte(body), &std); err != nil || std.IncludeUsage != want {
			t.Errorf("%s: encoding/json reads %v %v", body, std.IncludeUsage, err)
		}
	}
}

func TestDecodeChatKeepsEmptyAndNullMembers(t *testing.T) {
	r, err := DecodeChat([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[],"response_format":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Tools == nil || len(r.Tools) != 0 || r.ResponseFormat != nil {
		t.Errorf("tools %#v, response_format %#v", r.Tools, r.ResponseFormat)
	}
	r, err = DecodeChat([]byte(`{"model":"m","messages":null,"tools":null}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Tools != nil || r.Messages == nil || len(r.Messages) != 0 {
		t.Errorf("tools %#v, messages %#v", r.Tools, r.Messages)
	}
}

func BenchmarkDecodeChat(b *testing.B) {
	body := []byte(sampleChat)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeChat(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeChat20KB decodes a request whose prompt is 20 KB of
// text with line breaks (escapes), as a retrieved context makes it.
func BenchmarkDecodeChat20KB(b *testing.B) {
	filler := strings.Repeat(`Some retrieved context, line after line.\n`, 20<<10/42)
	body := []byte(`{"model":"m","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"` +
		filler + `Why is the sky blue?"}],"max_tokens":16}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeChat(body); err != nil {
			b.Fatal(err)
		}
	}
}

// Decoding is linear in the body whatever its shape: content given as
// tens of thousands of text parts allocates a small multiple of the body,
// not the square of it (as joining parts with += did).
func TestDecodeIsLinearInParts(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m","messages":[{"role":"user","content":[`)
	for i := range 60000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"type":"text","text":"some words "}`)
	}
	b.WriteString(`]}]}`)
	body := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := DecodeChat(body)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.Messages[0].Content.Text); got != 60000*len("some words ") {
		t.Fatalf("text of %d bytes", got)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 40*uint64(len(body)) {
		t.Errorf("decoding %d bytes allocated %d: not linear", len(body), alloc)
	}
}

// Repeated keys are refused however many keys come before them, and in
// messages too; an escaped key is the key it spells.
func TestRepeatedKeysAreRefused(t *testing.T) {
	var many strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, `"x_%d":%d,`, i, i)
	}
	for body, want := range map[string]string{
		`{"model":"m","messages":[],"seed":1,"seed":2}`:                          `field "seed" appears twice`,
		`{"model":"m","messages":[],"seed":1,"Seed":2}`:                          `fields "seed" and "Seed" differ only in letter case`,
		`{"model":"m","messages":[],"se\u0065d":1,"seed":2}`:                     `field "seed" appears twice`,
		`{"model":"m","messages":[],"Top_P":1}`:                                  `did you mean "top_p"`,
		`{"model":"m",` + many.String() + `"messages":[],"X_3":1}`:               `fields "x_3" and "X_3" differ only in letter case`,
		`{"model":"m",` + many.String() + `"messages":[],"x_39":1}`:              `field "x_39" appears twice`,
		`{"model":"m","messages":[{"role":"user","content":"a","Content":"b"}]}`: `fields "content" and "Content" differ only in letter case`,
	} {
		_, err := DecodeChat([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.80s: %v, want %s", body, err, want)
		}
	}
	if _, err := DecodeChat([]byte(`{"model":"m",` + many.String() + `"messages":[]}`)); err != nil {
		t.Errorf("40 distinct keys: %v", err)
	}
}

// What a decoded request keeps is its own: the body's buffer goes back to
// the server when the request is over, and is written over.
func TestDecodedRequestOwnsItsBytes(t *testing.T) {
	body := []byte(`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"http://x/a.png"}}]},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}],` +
		`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"response_format":{"type":"json_object"},"vendor":{"a":1}}`)
	r, err := DecodeChat(body)
	if err != nil {
		t.Fatal(err)
	}
	before, err := Marshal(r, r.Extra)
	if err != nil {
		t.Fatal(err)
	}
	parts := string(r.Messages[0].Content.Parts[1].Raw)
	for i := range body {
		body[i] = 'X'
	}
	after, err := Marshal(r, r.Extra)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) || string(r.Messages[0].Content.Parts[1].Raw) != parts || r.Messages[1].ToolCalls[0].Function.Name != "f" {
		t.Errorf("the request changed with its body:\n%s\n%s", before, after)
	}
}

// The plain decode takes the messages most chats are made of, and leaves
// every other to the full one (FuzzMessagePlain holds the two to the same
// result).
func TestMessagePlainTakesRoleAndContentOnly(t *testing.T) {
	for b, want := range map[string]bool{
		`{"role":"user","content":"Why is the sky blue?"}`:       true,
		` {"content":"line\nbreak \u00e9","role":"assistant"} `:  true,
		`{"role":"user","content":"x","name":"n"}`:               false,
		`{"role":"user","content":null}`:                         false,
		`{"role":"user","content":[{"type":"text","text":"x"}]}`: false,
		`{"Role":"user","content":"x"}`:                          false,
		`{"role":"user","role":"user","content":"x"}`:            false,
	} {
		var m Message
		if got := m.decodePlain([]byte(b)); got != want {
			t.Errorf("%s: plain decode %v, want %v", b, got, want)
		}
	}
}

// The plain decodes take a body of the common members, each once and of
// its plain type, and leave every other to the full decode
// (FuzzDecodePlain holds the two to the same result).
func TestDecodePlainTakesTheCommonMembersOnly(t *testing.T) {
	for b, want := range map[string]bool{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":16,"seed":1}`:              true,
		`{"model":"m","messages":[],"stream":true,"temperature":0.5,"steering":{"strategy":"best_of_n"}}`: true,
		`{"model":"m","messages":[],"top_k":5,"Vendor":{"a":[1]}}`:                                        true,
		`{"model":"m","messages":[],"top_k":5,"TOP_K":5}`:                                                 false,
		`{"model":"m","messages":[],"Seed":5}`:                                                            false,
		`{"model":"m","messages":[],"stop":"x"}`:                                                          false,
		`{"Model":"m","messages":[]}`:                                                                     false,
		`{"model":"m","model":"m","messages":[]}`:                                                         false,
		`{"model":"m","messages":[],"max_tokens":1.0}`:                                                    false,
		`{"model":"m","messages":[],"stream":null}`:                                                       false,
	} {
		d := &chatDecoding{}
		d.chatFields = (*chatFields)(&d.r)
		if _, got := d.decodePlain([]byte(b)); got != want {
			t.Errorf("%s: plain decode %v, want %v", b, got, want)
		}
	}
	for b, want := range map[string]bool{
		`{"model":"m","prompt":"Once upon","max_tokens":8,"echo":true,"logprobs":2,"best_of":3}`: true,
		`{"model":"m","prompt":["a","b"]}`:           false,
		`{"model":"m","prompt":"x","logprobs":true}`: false,
		`{"model":"m","prompt":"x","Prompt":"y"}`:    false,
	} {
		var r CompletionRequest
		if _, got := r.decodePlain([]byte(b)); got != want {
			t.Errorf("%s: plain completion decode %v, want %v", b, got, want)
		}
	}
}

// tool_choice reaches the backend as sent, so the name checked must be the
// one the backend reads: its keys are checked as the request's are, and
// errors name the path.
func TestToolChoiceKeys(t *testing.T) {
	const base = `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":`
	for choice, param := range map[string]string{
		`{"type":"function","function":{"Name":"f"}}`:            "tool_choice.function.name",
		`{"type":"function","function":{"name":"x","name":"f"}}`: "tool_choice.function.name",
		`{"type":"function","Function":{"name":"f"}}`:            "tool_choice.function",
		`{"TYPE":"function","function":{"name":"f"}}`:            "tool_choice.type",
		`{"type":"function","function":{"name":"g"}}`:            "tool_choice.function.name",
		`{"type":"function","function":{}}`:                      "tool_choice.function.name",
		`{"type":"function"}`:                                    "tool_choice.function.name",
	} {
		r, err := DecodeChat([]byte(base + choice + `}`))
		if err == nil {
			_, err = ChatToBackend(r, DefaultLimits)
		}
		if err == nil || fault.Param(err) != param {
			t.Errorf("%s: %v (param %q), want an error naming %s", choice, err, fault.Param(err), param)
		}
	}
	r, err := DecodeChat([]byte(base + `{"type":"function","function":{"name":"f"},"x":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ChatToBackend(r, DefaultLimits); err != nil {
		t.Errorf("a tool_choice naming a tool, with a member of its own: %v", err)
	}
}

// What the validation refuses, it refuses by name, with the member's own
// name in the message and the right class.
func TestValidationNamesTheMember(t *testing.T) {
	const m = `"model":"m","messages":[{"role":"user","content":"hi"}]`
	for body, want := range map[string]struct {
		param, msg string
		class      error
	}{
		`{` + m + `,"max_completion_tokens":0}`:               {"max_completion_tokens", "max_completion_tokens must be at least 1", fault.ErrInvalid},
		`{` + m + `,"max_completion_tokens":1000000}`:         {"max_completion_tokens", "max_completion_tokens must be at most", fault.ErrInvalid},
		`{` + m + `,"max_tokens":1000000}`:                    {"max_tokens", "max_tokens must be at most", fault.ErrInvalid},
		`{` + m + `,"stream_options":{"include_usage":true}}`: {"stream_options", "only allowed when stream is true", fault.ErrInvalid},
		// A missing content is refused as null is.
		`{"model":"m","messages":[{"role":"user"}]}`:                                    {"messages[0].content", "a user message needs content", fault.ErrInvalid},
		`{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant"}]}`: {"messages[1].content", "an assistant message needs content, tool_calls or a refusal", fault.ErrInvalid},
	} {
		r, err := DecodeChat([]byte(body))
		if err == nil {
			l := DefaultLimits
			l.MaxTokens = 16384
			_, err = ChatToBackend(r, l)
		}
		if err == nil || fault.Param(err) != want.param || !strings.Contains(err.Error(), want.msg) || !errors.Is(err, want.class) {
			t.Errorf("%s: %v (param %q), want %q naming %s", body, err, fault.Param(err), want.msg, want.param)
		}
	}
	for body, want := range map[string]struct {
		msg   string
		class error
	}{
		`{"model":"m","prompt":["a","b"]}`:                                   {"a batch of 2 prompts is not supported", fault.ErrUnsupported},
		`{"model":"m","prompt":[]}`:                                          {"prompt must be a string or an array of one string", fault.ErrInvalid},
		`{"model":"m","prompt":"a","stream_options":{"include_usage":true}}`: {"only allowed when stream is true", fault.ErrInvalid},
	} {
		r, err := DecodeCompletion([]byte(body))
		if err == nil {
			_, err = CompletionToBackend(r, DefaultLimits)
		}
		if err == nil || !strings.Contains(err.Error(), want.msg) || !errors.Is(err, want.class) {
			t.Errorf("%s: %v, want %q", body, err, want.msg)
		}
	}
	r, err := DecodeChat([]byte(`{"model":"m","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"ok"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ChatToBackend(r, DefaultLimits); err != nil {
		t.Errorf("an assistant message of tool calls without content: %v", err)
	}
	if r, err := DecodeCompletion([]byte(`{"model":"m","prompt":["a"],"stream":true,"stream_options":{"include_usage":true}}`)); err != nil {
		t.Fatal(err)
	} else if _, err := CompletionToBackend(r, DefaultLimits); err != nil {
		t.Errorf("a prompt array of one, streamed with usage: %v", err)
	}
}

// An error that carries a code of its own (a backend's) keeps it in the
// envelope; one without gets its class's.
func TestErrorOfKeepsAnOwnCode(t *testing.T) {
	status, body := ErrorOf(&fault.ParamError{Param: "messages", Msg: "too long", Err: fault.ErrInvalid, Code: "context_length_exceeded"})
	if status != 400 || body.Error.Code == nil || *body.Error.Code != "context_length_exceeded" || *body.Error.Param != "messages" {
		t.Errorf("%d %+v", status, body.Error)
	}
	if _, body := ErrorOf(&fault.ParamError{Param: "model", Msg: "no such model", Err: fault.ErrNotFound}); body.Error.Code == nil || *body.Error.Code != "model_not_found" {
		t.Errorf("%+v", body.Error)
	}
}

// What a client sent comes back bounded: a 100 KB key as a param, a
// message quoting it.
func TestErrorOfIsBounded(t *testing.T) {
	key := strings.Repeat("k", 100<<10)
	status, body := ErrorOf(fault.Invalid(key, "unknown field %s", key))
	if status != 400 || len(*body.Error.Param) > maxParam+len("…") || len(body.Error.Message) > maxMessage+len("…") ||
		!strings.HasPrefix(*body.Error.Param, "kkk") || !strings.HasPrefix(body.Error.Message, "unknown field kkk") {
		t.Errorf("%d: param of %d bytes, message of %d", status, len(*body.Error.Param), len(body.Error.Message))
	}
}

// A chunk carries the fingerprint of the backend that wrote its piece.
func TestChunksCarryTheFingerprint(t *testing.T) {
	d := backend.Delta{Text: "hi", Fingerprint: "fp_1"}
	if c := ChatChunkOf("id", "m", 1, d, true); c.SystemFingerprint != "fp_1" {
		t.Errorf("chat chunk %+v", c)
	}
	if c := CompletionChunkOf("id", "m", 1, d, 0); c.SystemFingerprint != "fp_1" {
		t.Errorf("completion chunk %+v", c)
	}
	if b, _ := json.Marshal(ChatChunkOf("id", "m", 1, backend.Delta{Text: "hi"}, true)); strings.Contains(string(b), "system_fingerprint") {
		t.Errorf("a chunk with no fingerprint says one: %s", b)
	}
	// The backend's other top-level fields go on too; a known field wins
	// over a stray copy.
	d.Extra = map[string]json.RawMessage{"service_tier": json.RawMessage(`"flex"`), "model": json.RawMessage(`"other"`)}
	for _, c := range []any{ChatChunkOf("id", "m", 1, d, true), CompletionChunkOf("id", "m", 1, d, 0)} {
		b, _ := marshalEvent(c)
		if !strings.HasSuffix(string(b), `,"service_tier":"flex"}`) || strings.Contains(string(b), "other") || !json.Valid(b) {
			t.Errorf("chunk %s", b)
		}
	}
}

// A body that is not Unicode text is refused, not read as U+FFFD by the
// gateway while the backend is sent the bytes as written.
func TestBodiesAreUnicodeText(t *testing.T) {
	for body, msg := range map[string]string{
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\xffb\"}]}": "request body is not UTF-8 text (byte 52)",
		`{"model":"m","messages":[{"role":"user","content":"a\ud800b"}]}`:             `request body has an unpaired UTF-16 surrogate escape \ud800 (byte 52): JSON strings must be Unicode text`,
		`{"model":"m","messages":[{"role":"user","content":"\udc00"}]}`:               `request body has an unpaired UTF-16 surrogate escape \udc00 (byte 51): JSON strings must be Unicode text`,
		`{"model":"m","messages":[{"role":"user","content":"\uD83D\u0041"}]}`:         `request body has an unpaired UTF-16 surrogate escape \uD83D (byte 51): JSON strings must be Unicode text`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"user":"\ud83d"}`:    `request body has an unpaired UTF-16 surrogate escape \ud83d (byte 64): JSON strings must be Unicode text`,
	} {
		if _, err := DecodeChat([]byte(body)); err == nil || err.Error() != msg {
			t.Errorf("%q: %v, want %s", body, err, msg)
		}
	}
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"\ud83d\ude00 \\ud800 \u00e9 \ufffd é 😀"}]}`,
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xef\xbf\xbd\"}]}",
	} {
		r, err := DecodeChat([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		if c := r.Messages[0].Content.Text; !utf8.ValidString(c) || strings.Contains(body, "😀") && !strings.HasPrefix(c, "😀 \\ud800 é") {
			t.Errorf("%s: read %q", body, c)
		}
	}
}

// BenchmarkChunkEvent is one chat chunk of a stream the gateway writes
// (adapted, steered or replayed).
func BenchmarkChunkEvent(b *testing.B) {
	d := backend.Delta{Text: "hello there, general", Fingerprint: "fp_1"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := marshalEvent(ChatChunkOf("chatcmpl-384996859f05cbcc04000000", "model", 1700000000, d, false)); err != nil {
			b.Fatal(err)
		}
	}
}

// A body that is not a JSON object says what is wrong and where.
func TestInvalidBodySaysWhere(t *testing.T) {
	for body, want := range map[string]string{
		`{"model":"m",}`:  "request body is not valid JSON: invalid character '}' looking for beginning of object key string (at byte 14)",
		`{"model":"m"`:    "request body is not valid JSON: unexpected end of JSON input (at byte 12)",
		`[{"model":"m"}]`: "request body must be a JSON object, not a JSON array",
		`"hi"`:            "request body must be a JSON object, not a JSON string",
		`{"a":` + strings.Repeat("[", 10001) + `]}`: "nests deeper than 10000 levels",
	} {
		_, err := DecodeChat([]byte(body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40s: %v, want %q", body, err, want)
		}
	}
}
