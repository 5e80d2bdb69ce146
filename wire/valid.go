package wire

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/steergate/steergate/fault"
)

// Valid reports whether b is one JSON value, with whitespace around it,
// exactly as json.Valid does, nesting limit included. It reads strings a
// run at a time instead of through encoding/json's byte-at-a-time scanner:
// on a long prompt the validation was most of a request's decode. It keeps
// its open objects and arrays on a stack of its own, not the goroutine's.
func Valid(b []byte) bool {
	var buf [64]byte
	open := buf[:0] // '{' or '[' for each open container
	i := skipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(open) == maxNesting {
				return false
			}
			open = append(open, c)
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']'
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i = validKey(b, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			if i = validString(b, i); i < 0 {
				return false
			}
		case c == '-' || '0' <= c && c <= '9':
			if i = validNumber(b, i); i < 0 {
				return false
			}
		case c == 't':
			if i = literal(b, i, "true"); i < 0 {
				return false
			}
		case c == 'f':
			if i = literal(b, i, "false"); i < 0 {
				return false
			}
		case c == 'n':
			if i = literal(b, i, "null"); i < 0 {
				return false
			}
		default:
			return false
		}
		// A value has ended at i: close what it ends, then the next value.
		for {
			i = skipSpace(b, i)
			if len(open) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = skipSpace(b, i+1)
			if top == '{' {
				if i = validKey(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// maxNesting is encoding/json's limit on nested objects and arrays.
const maxNesting = 10000

// validKey reads an object's key and its colon at i, and returns where
// the value may start, or -1.
func validKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validString(b, i); i < 0 {
		return -1
	}
	if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// validString returns the index after the string at b[i] == '"', or -1:
// no control characters, only JSON's escapes; other bytes are taken as
// they are, as encoding/json takes them.
func validString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < ' ':
			return -1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if hex4(b[i:]) < 0 {
					return -1
				}
				i += 5
			default:
				return -1
			}
		}
	}
	return -1
}

// validNumber returns the index after the number at i, or -1.
func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || b[i+1] < '0' || b[i+1] > '9' {
			return -1
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return -1
		}
		i = digits(b, i)
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// literal returns the index after lit at i, or -1.
func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// unicodeText refuses a body, already Valid, that is not Unicode text:
// bytes that are not UTF-8, or a \u escape of half a UTF-16 surrogate
// pair. The gateway would read either as U+FFFD while the backend is sent
// the body as written and reads it its own way (or fails on it), so one
// request would mean two things; JSON's RFC 8259 asks for UTF-8 anyway.
func unicodeText(b []byte) error {
	if !utf8.Valid(b) {
		at := 0
		for at < len(b) {
			r, size := utf8.DecodeRune(b[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		return fault.Invalid("", "request body is not UTF-8 text (byte %d)", at)
	}
	// Outside strings a Valid body has no backslash: every one starts an
	// escape.
	for i := 0; ; {
		k := bytes.IndexByte(b[i:], '\\')
		if k < 0 {
			return nil
		}
		i += k
		if b[i+1] != 'u' {
			i += 2
			continue
		}
		r := hex4(b[i:])
		switch {
		case utf16.IsSurrogate(r) && r < 0xdc00:
			if next := hex4(b[i+6:]); 0xdc00 <= next && next <= 0xdfff {
				i += 12
				continue
			}
			fallthrough
		case utf16.IsSurrogate(r):
			return fault.Invalid("", "request body has an unpaired UTF-16 surrogate escape %s (byte %d): JSON strings must be Unicode text", b[i:i+6], i)
		}
		i += 6
	}
}
