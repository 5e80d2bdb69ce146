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

// A key spelt with escapes is the key its escapes spell, to the rewrites
// as to the decode: the model is set in place, not added beside it (the
// backend would get two), and steering is dropped.
func TestRewriteMatchesEscapedKeys(t *testing.T) {
	body := []byte(`{"mod\u0065l":"alias","st\u0065ering":{"strategy":"none"},"\u006e":1,"x":2}`)
	got, err := Rewrite(body, map[string]any{"model": "target"}, "steering")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"mod\u0065l":"target","\u006e":1,"x":2}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	set, changed := SetValue(body, "model", []byte(`"client"`))
	if want := `{"mod\u0065l":"client","st\u0065ering":{"strategy":"none"},"\u006e":1,"x":2}`; string(set) != want || !changed {
		t.Errorf("SetValue: %s (changed %v)", set, changed)
	}
	if v := Value(body, "n"); string(v) != "1" {
		t.Errorf("n = %q", v)
	}
}

// SetValue replaces one member's value and leaves every other byte, and a
// body that lacks the member or has the value already, as it was.
func TestSetValue(t *testing.T) {
	body := []byte(`{"id":"x", "model" : "up\"stream" ,"choices":[{"model":"inner"}],"n":1}`)
	got, changed := SetValue(body, "model", []byte(`"client"`))
	if want := `{"id":"x", "model" : "client" ,"choices":[{"model":"inner"}],"n":1}`; string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !changed {
		t.Error("a replaced value is not reported changed")
	}
	if again, changed := SetValue(got, "model", []byte(`"client"`)); changed || &again[0] != &got[0] {
		t.Error("a value that is already raw was copied")
	}
	for _, b := range []string{`{"id":"x","choices":[{"model":"inner"}]}`, `[1]`, `{"a" 1}`, ``} {
		if out, changed := SetValue([]byte(b), "model", []byte(`"client"`)); changed || string(out) != b {
			t.Errorf("%q became %q", b, out)
		}
	}
}

// AppendValue writes SetValue's answer after what dst holds, and adds
// nothing where SetValue would change nothing.
func TestAppendValue(t *testing.T) {
	body := []byte(`{"id":"x", "model" : "up\"stream" ,"n":1}`)
	got, changed := AppendValue([]byte("data: "), body, "model", []byte(`"client"`))
	if want := `data: {"id":"x", "model" : "client" ,"n":1}`; string(got) != want || !changed {
		t.Errorf("got %s (changed %v)\nwant %s", got, changed, want)
	}
	for _, b := range []string{`{"model":"client"}`, `{"id":"x"}`, `[1]`, ``} {
		if out, changed := AppendValue([]byte("data: "), []byte(b), "model", []byte(`"client"`)); changed || string(out) != "data: " {
			t.Errorf("%q: %q (changed %v)", b, out, changed)
		}
	}
}

func TestElements(t *testing.T) {
	got, ok := elements([]byte(` [ {"a":[1,"]"]} , "x,y\"]" ,3,null , [] ] `))
	want := []string{`{"a":[1,"]"]}`, `"x,y\"]"`, `3`, `null`, `[]`}
	if !ok || len(got) != len(want) {
		t.Fatalf("%q %v", got, ok)
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("element %d: %q, want %q", i, got[i], want[i])
		}
	}
	for b, wantOK := range map[string]bool{`null`: true, `[]`: true, `{}`: false, `"[1]"`: false, `1`: false} {
		if got, ok := elements([]byte(b)); ok != wantOK || len(got) != 0 {
			t.Errorf("%s: %q %v", b, got, ok)
		}
	}
}

// A body cut short is not an object, however much of it scans.
func TestCutShortIsRefused(t *testing.T) {
	for _, b := range []string{`{"a":1,"b":{"c":2}`, `{"a":1,`, `{"a":"x`, `{`} {
		if err := EachMember([]byte(b), func(Member) error { return nil }); err == nil {
			t.Errorf("%s: scanned as an object", b)
		}
	}
	if _, ok := elements([]byte(`[1,{"a":2}`)); ok {
		t.Error("an array cut short split")
	}
}

// setAside takes out the members named in any letter case or spelled
// with escapes, as encoding/json would match them, and keeps the rest.
func TestSetAside(t *testing.T) {
	body := []byte(`{"role":"user", "Content" : "a\nb" ,"n":1,"tool_c\u0061lls":[1],"x":{"content":2}}`)
	rest, aside, err := setAside(body, "content", "tool_calls")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"role":"user","n":1,"x":{"content":2}}`; string(rest) != want {
		t.Errorf("rest %s, want %s", rest, want)
	}
	if string(aside[0]) != `"a\nb"` || string(aside[1]) != `[1]` || aside[2] != nil {
		t.Errorf("aside %q", aside)
	}
	if rest, aside, err := setAside([]byte(`{"a":1}`), "content"); err != nil || string(rest) != `{"a":1}` || aside[0] != nil {
		t.Errorf("nothing to set aside: %s %q %v", rest, aside, err)
	}
}
