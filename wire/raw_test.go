package wire

import (
	"encoding/json"
	"testing"
)

// Rewrite sets and drops top-level members and leaves every other byte as
// written, nested objects, escapes and odd spacing included.
func TestRewrite(t *testing.T) {
	body := []byte(` { "model" : "a" , "messages":[{"role":"user","content":"q \"x\" {}"}],"n":1 ,"steering":{"strategy":"none"},"x\\u0041":[1,{"b":2}]}`)
	got, err := Rewrite(body, map[string]any{"model": "target", "seed": 3}, "steering")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"target","messages":[{"role":"user","content":"q \"x\" {}"}],"n":1,"x\\u0041":[1,{"b":2}],"seed":3}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !json.Valid(got) {
		t.Error("not JSON")
	}
	if v := Value(body, "n"); string(v) != "1" {
		t.Errorf("n = %q", v)
	}
	if v := Value(body, "messages"); string(v) != `[{"role":"user","content":"q \"x\" {}"}]` {
		t.Errorf("messages = %q", v)
	}
	for _, bad := range []string{`[1]`, `{"a" 1}`, `{1:2}`, `"x"`} {
		if _, err := Rewrite([]byte(bad), nil); err == nil {
			t.Errorf("%s rewritten", bad)
		}
	}
}
