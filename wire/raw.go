package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
)

// Member is one top-level member of a JSON object: its key (as written,
// without quotes, escapes left alone) and where its value lies.
type Member struct {
	Key        []byte
	Start, End int // the member from its key's quote to its value's end
	Value      []byte
}

var errNotObject = errors.New("not a JSON object")

// Members lists the top-level members of a JSON object without decoding
// it: a scan that skips values, for rewriting a body in place. The body
// must be valid JSON (the caller has decoded it once).
func Members(body []byte) ([]Member, error) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, errNotObject
	}
	var out []Member
	i = skipSpace(body, i+1)
	for i < len(body) && body[i] != '}' {
		if body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		if body[i] != '"' {
			return nil, errNotObject
		}
		keyEnd := stringEnd(body, i)
		if keyEnd < 0 {
			return nil, errNotObject
		}
		m := Member{Key: body[i+1 : keyEnd-1], Start: i}
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return nil, errNotObject
		}
		i = skipSpace(body, i+1)
		end := skipValue(body, i)
		if end < 0 || end > len(body) {
			return nil, errNotObject
		}
		for end > i && (body[end-1] == ' ' || body[end-1] == '\n' || body[end-1] == '\t' || body[end-1] == '\r') {
			end--
		}
		m.Value, m.End = body[i:end], end
		out = append(out, m)
		i = skipSpace(body, end)
	}
	return out, nil
}

// Rewrite returns body with the top-level members named in set given new
// values (added at the end when absent) and those in drop removed. Values
// in set are encoded with encoding/json. Everything else stays as written.
func Rewrite(body []byte, set map[string]any, drop ...string) ([]byte, error) {
	ms, err := Members(body)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)+64)
	out = append(out, '{')
	done := map[string]bool{}
	first := true
	add := func(key string, raw []byte) {
		if !first {
			out = append(out, ',')
		}
		first = false
		k, _ := json.Marshal(key)
		out = append(append(append(out, k...), ':'), raw...)
	}
	for _, m := range ms {
		key := string(m.Key)
		if slices.Contains(drop, key) {
			continue
		}
		if v, ok := set[key]; ok {
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			add(key, raw)
			done[key] = true
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(out, body[m.Start:m.End]...)
	}
	for key, v := range set {
		if !done[key] {
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			add(key, raw)
		}
	}
	return append(out, '}'), nil
}

// Value returns the raw value of a top-level member, or nil.
func Value(body []byte, key string) []byte {
	ms, err := Members(body)
	if err != nil {
		return nil
	}
	for _, m := range ms {
		if bytes.Equal(m.Key, []byte(key)) {
			return m.Value
		}
	}
	return nil
}
