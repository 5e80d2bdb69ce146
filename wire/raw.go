package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Member is one top-level member of a JSON object: its key (as written,
// without quotes, escapes left alone) and where its value lies.
type Member struct {
	Key        []byte
	Start, End int // the member from its key's quote to its value's end
	Value      []byte
}

// Name is the member's key as its escapes spell it (the key as written
// when it has none, with no copy).
func (m Member) Name() ([]byte, error) {
	if bytes.IndexByte(m.Key, '\\') < 0 {
		return m.Key, nil
	}
	k, ok := unescape(m.Key)
	if !ok {
		return nil, errBadKey
	}
	return []byte(k), nil
}

var errBadKey = errors.New("a key with a malformed escape")

var errNotObject = errors.New("not a JSON object")

// ErrStop, returned by EachMember's function, ends the scan early
// without an error.
var ErrStop = errors.New("stop the scan")

// Members lists the top-level members of a JSON object without decoding
// it: a scan that skips values, for rewriting a body in place. The body
// must be valid JSON (the caller has decoded it once).
func Members(body []byte) ([]Member, error) {
	var out []Member
	err := EachMember(body, func(m Member) error {
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachMember calls fn with the top-level members of a JSON object in
// order, Members without the slice, until fn returns an error: ErrStop
// ends it with none, any other is EachMember's. The body must be valid
// JSON.
func EachMember(body []byte, fn func(Member) error) error {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return errNotObject
	}
	i = skipSpace(body, i+1)
	for i < len(body) && body[i] != '}' {
		if body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		if body[i] != '"' {
			return errNotObject
		}
		keyEnd := stringEnd(body, i)
		if keyEnd < 0 {
			return errNotObject
		}
		m := Member{Key: body[i+1 : keyEnd-1], Start: i}
		i = skipSpace(body, keyEnd)
		if i >= len(body) || body[i] != ':' {
			return errNotObject
		}
		i = skipSpace(body, i+1)
		end := skipValue(body, i)
		if end < 0 || end > len(body) {
			return errNotObject
		}
		for end > i && (body[end-1] == ' ' || body[end-1] == '\n' || body[end-1] == '\t' || body[end-1] == '\r') {
			end--
		}
		m.Value, m.End = body[i:end], end
		if err := fn(m); err == ErrStop {
			return nil
		} else if err != nil {
			return err
		}
		i = skipSpace(body, end)
	}
	if i >= len(body) {
		return errNotObject // cut short before its closing brace
	}
	return nil
}

// elements splits a JSON array into its elements without decoding them;
// null is an empty array. b must be valid JSON (json.Unmarshal hands an
// Unmarshaler only what it has checked).
func elements(b []byte) ([][]byte, bool) {
	i := skipSpace(b, 0)
	if string(b[i:]) == "null" {
		return nil, true
	}
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	var out [][]byte
	for i = skipSpace(b, i+1); i < len(b) && b[i] != ']'; i = skipSpace(b, i) {
		if b[i] == ',' {
			i++
			continue
		}
		end := skipValue(b, i)
		if end < 0 || end > len(b) {
			return nil, false
		}
		v := bytes.TrimRight(b[i:end], " \t\r\n")
		out = append(out, v)
		i = end
	}
	if i >= len(b) {
		return nil, false // cut short before its closing bracket
	}
	return out, true
}

// plainString reads a JSON string (valid JSON) that has no escapes and is
// valid UTF-8, the common case, as encoding/json would; ok is false for
// any other, which encoding/json then decodes.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	in := b[1 : len(b)-1]
	if bytes.IndexByte(in, '\\') >= 0 || !utf8.Valid(in) {
		return "", false
	}
	return string(in), true
}

// SetValue returns body with the value of its top-level member key
// replaced by raw (valid JSON), in one scan that stops at the member;
// every other byte stays as written. A body without the member, or whose
// value is raw already, comes back as it is (changed false), as does one
// that is not an object.
func SetValue(body []byte, key string, raw []byte) (out []byte, changed bool) {
	m, ok := member(body, key)
	if !ok || bytes.Equal(m.Value, raw) {
		return body, false
	}
	return appendReplaced(make([]byte, 0, len(body)-len(m.Value)+len(raw)), body, m, raw), true
}

// AppendValue is SetValue appending to dst, so that a caller rewriting one
// small object after another reuses one buffer. Where SetValue would
// change nothing, dst comes back as it was.
func AppendValue(dst, body []byte, key string, raw []byte) (out []byte, changed bool) {
	m, ok := member(body, key)
	if !ok || bytes.Equal(m.Value, raw) {
		return dst, false
	}
	return appendReplaced(dst, body, m, raw), true
}

// appendReplaced appends body to dst with member m's value replaced by raw.
func appendReplaced(dst, body []byte, m Member, raw []byte) []byte {
	dst = append(dst, body[:m.End-len(m.Value)]...)
	dst = append(dst, raw...)
	return append(dst, body[m.End:]...)
}

// member finds a top-level member by its key, as its escapes spell it.
func member(body []byte, key string) (found Member, ok bool) {
	_ = EachMember(body, func(m Member) error {
		if m.Is(key) {
			found, ok = m, true
			return ErrStop
		}
		return nil
	})
	return found, ok
}

// Is reports whether the member's key is key, as its escapes spell it: a
// key written "mod\u0065l" is model to the decode, so it must be to every
// rewrite too, or the backend would get two.
func (m Member) Is(key string) bool {
	if string(m.Key) == key {
		return true
	}
	if bytes.IndexByte(m.Key, '\\') < 0 {
		return false
	}
	name, err := m.Name()
	return err == nil && string(name) == key
}

// Rewrite returns body with the top-level members named in set given new
// values (added at the end when absent) and those in drop removed, keys
// matched as their escapes spell them. Values in set are encoded with
// encoding/json. Everything else stays as written. It scans the body once
// and builds the answer as it goes.
func Rewrite(body []byte, set map[string]any, drop ...string) ([]byte, error) {
	out := append(make([]byte, 0, len(body)+64), '{')
	next := func() []byte { // out, ready for the next member
		if len(out) > 1 {
			out = append(out, ',')
		}
		return out
	}
	var done []string // the keys of set written in place
	err := EachMember(body, func(m Member) error {
		key := string(m.Key)
		if bytes.IndexByte(m.Key, '\\') >= 0 {
			name, err := m.Name()
			if err != nil {
				return err
			}
			key = string(name)
		}
		if slices.Contains(drop, key) {
			return nil
		}
		v, ok := set[key]
		if !ok {
			out = append(next(), body[m.Start:m.End]...)
			return nil
		}
		raw, err := json.Marshal(v)
		if err != nil {
			return err
		}
		// The key as written, quotes included.
		out = append(append(append(next(), body[m.Start:m.Start+len(m.Key)+2]...), ':'), raw...)
		done = append(done, key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for key, v := range set {
		if !slices.Contains(done, key) {
			raw, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			k, _ := json.Marshal(key)
			out = append(append(append(next(), k...), ':'), raw...)
		}
	}
	return append(out, '}'), nil
}

// Value returns the raw value of a top-level member, or nil.
func Value(body []byte, key string) []byte {
	m, _ := member(body, key)
	return m.Value
}

// isNull reports whether the JSON value b is null.
func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// setAside returns the object body without its members named as in names
// (in any letter case: encoding/json matches names so), and their values
// in aside, by names' order (nil for one that is absent). A value set
// aside then never passes through encoding/json's scanner with the rest,
// which for a long prompt is most of the work. names has at most
// len(aside) entries; the body must be valid JSON.
func setAside(body []byte, names ...string) (rest []byte, aside [3][]byte, err error) {
	rest = append(make([]byte, 0, 128), '{')
	err = EachMember(body, func(m Member) error {
		name, err := m.Name()
		if err != nil {
			return err
		}
		for i, n := range names {
			if bytes.EqualFold(name, []byte(n)) {
				aside[i] = m.Value
				return nil
			}
		}
		if len(rest) > 1 {
			rest = append(rest, ',')
		}
		rest = append(rest, body[m.Start:m.End]...)
		return nil
	})
	return append(rest, '}'), aside, err
}

// unquote decodes a JSON string (b, quotes included, from a valid JSON
// text) as encoding/json does, escapes, surrogate pairs and all, with
// U+FFFD for invalid UTF-8 and lone surrogates; ok is false for a
// malformed escape or what is not quoted. Runs without escapes are copied
// whole.
func unquote(b []byte) (s string, ok bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	return unescape(b[1 : len(b)-1])
}

// unescape is unquote for a string's bytes between its quotes.
func unescape(b []byte) (s string, ok bool) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != '\\' {
			k := bytes.IndexByte(b[i:], '\\')
			if k < 0 {
				k = len(b) - i
			}
			out = appendUTF8(out, b[i:i+k])
			i += k
			continue
		}
		if i+1 >= len(b) {
			return "", false
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/', '\'':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[i:])
			if r < 0 {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if dec := utf16.DecodeRune(r, hex4(b[i:])); dec != unicode.ReplacementChar {
					i += 6
					out = utf8.AppendRune(out, dec)
					continue
				}
				r = unicode.ReplacementChar
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", false
		}
		i += 2
	}
	return string(out), true
}

// appendUTF8 appends run, each byte of it that is not UTF-8 as U+FFFD.
func appendUTF8(out, run []byte) []byte {
	if utf8.Valid(run) {
		return append(out, run...)
	}
	for len(run) > 0 {
		r, size := utf8.DecodeRune(run)
		out = utf8.AppendRune(out, r) // RuneError for a byte that is not UTF-8
		run = run[size:]
	}
	return out
}

// hex4 reads the \uXXXX escape at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
