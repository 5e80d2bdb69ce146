package wire_test

import (
	"testing"

	"github.com/steergate/steergate/wire"
)

// Unread names the first field inside a request's objects that the
// gateway does not read, by its path; an OpenAI-compatible backend gets it
// as sent, an adapter that builds its own request refuses it.
func TestUnread(t *testing.T) {
	const user = `{"role":"user","content":"hi"}`
	for _, c := range []struct{ body, want string }{
		{`{"model":"m","messages":[` + user + `]}`, ""},
		{`{"model":"m","messages":[` + user + `,{"role":"user","content":"x","bogus":1}]}`, "messages[1].bogus"},
		{`{"model":"m","messages":[{"role":"user","content":"x","\u0062ogus":1}]}`, "messages[0].bogus"},
		{`{"model":"m","messages":[{"role":"user","name":"ann","content":[{"type":"text","text":"a","cache_control":{}}]}]}`, "messages[0].content[0].cache_control"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA","detail":"high"}}]}]}`, "messages[0].content[0].image_url.detail"},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA","detail":"auto"}}]}]}`, ""},
		{`{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA","format":"wav"}}]}]}`, ""},
		{`{"model":"m","messages":[` + user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}","extra":1}}]},{"role":"tool","tool_call_id":"c","content":"1"}]}`,
			"messages[1].tool_calls[0].function.extra"},
		{`{"model":"m","messages":[` + user + `,{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","index":0,"function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}]}`,
			"messages[1].tool_calls[0].index"},
		{`{"model":"m","messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{}}}]}`, ""},
		{`{"model":"m","messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f","bogus":true}}]}`, "tools[0].function.bogus"},
		{`{"model":"m","messages":[` + user + `],"tools":[{"type":"function","function":{"name":"f"},"cache_control":{}}]}`, "tools[0].cache_control"},
		{`{"model":"m","messages":[` + user + `],"response_format":{"type":"json_object","bogus":1}}`, "response_format.bogus"},
		{`{"model":"m","messages":[` + user + `],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{},"bogus":1}}}`, "response_format.json_schema.bogus"},
	} {
		req, err := wire.DecodeChat([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		br, err := wire.ChatToBackend(req, wire.DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		if got := wire.Unread(br); got != c.want {
			t.Errorf("%s: %q, want %q", c.body, got, c.want)
		}
	}
}
