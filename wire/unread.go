package wire

import (
	"bytes"
	"fmt"

	"github.com/steergate/steergate/backend"
)

// Unread names, by its path, the first field inside the request's
// messages (their content parts and tool calls), tools and response_format
// that the gateway does not read: "messages[0].x", "tools[1].function.x",
// or an image part's detail other than auto. An OpenAI-compatible backend
// gets those objects as the client sent them; an adapter that builds its
// own request (Ollama's, the reference model's) refuses what Unread names
// rather than drop it. It is empty when there is none.
func Unread(r *backend.Request) string {
	for i, m := range r.Messages {
		at := fmt.Sprintf("messages[%d]", i)
		if p := unreadIn(m.Raw, messageKeys, at, func(key string, v []byte) string {
			switch key {
			case "tool_calls":
				return eachUnread(v, at+".tool_calls", func(b []byte, at string) string {
					return unreadIn(b, toolCallKeys, at, nested(at, "function", functionCallKeys))
				})
			case "content":
				return eachUnread(v, at+".content", unreadPart)
			}
			return ""
		}); p != "" {
			return p
		}
	}
	for i, t := range r.Tools {
		at := fmt.Sprintf("tools[%d]", i)
		if p := unreadIn(t.Raw, toolKeys, at, nested(at, "function", toolFunctionKeys)); p != "" {
			return p
		}
	}
	if r.ResponseFormat != nil {
		return unreadIn(r.ResponseFormat.Raw, responseFormatKeys, "response_format", nested("response_format", "json_schema", jsonSchemaKeys))
	}
	return ""
}

var (
	functionCallKeys = knownKeys(FunctionCall{})
	toolFunctionKeys = knownKeys(ToolFunction{})
	jsonSchemaKeys   = knownKeys(JSONSchema{})
	imageURLKeys     = map[string]bool{"url": true, "detail": true}
)

// unreadIn is the path of the first key of the object b that known does
// not have, else what inner finds in a known member's value (inner may be
// nil). Anything not an object has nothing unread: it was refused, or
// taken whole, when it was decoded.
func unreadIn(b []byte, known map[string]bool, at string, inner func(key string, v []byte) string) string {
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '{' {
		return ""
	}
	var found string
	_ = EachMember(b, func(m Member) error {
		name, err := m.Name()
		switch {
		case err != nil || !known[string(name)]:
			found = at + "." + string(name)
		case inner != nil:
			found = inner(string(name), m.Value)
		}
		if found != "" {
			return ErrStop
		}
		return nil
	})
	return found
}

// nested checks the object at.key against known.
func nested(at, key string, known map[string]bool) func(string, []byte) string {
	return func(k string, v []byte) string {
		if k != key {
			return ""
		}
		return unreadIn(v, known, at+"."+key, nil)
	}
}

// eachUnread is the first path fn finds in the elements of the array b.
func eachUnread(b []byte, at string, fn func(b []byte, at string) string) string {
	els, ok := elements(b)
	if !ok {
		return ""
	}
	for j, e := range els {
		if p := fn(e, fmt.Sprintf("%s[%d]", at, j)); p != "" {
			return p
		}
	}
	return ""
}

// unreadPart checks a content part of the types the gateway reads (text,
// refusal, image_url); others are the backend's capabilities' to refuse.
func unreadPart(b []byte, at string) string {
	var typ string
	_ = EachMember(bytes.TrimSpace(b), func(m Member) error {
		if string(m.Key) == "type" {
			typ, _ = unquote(m.Value)
		}
		return nil
	})
	if typ != "text" && typ != "refusal" && typ != "image_url" {
		return ""
	}
	return unreadIn(b, partKeys, at, func(key string, v []byte) string {
		if key != "image_url" {
			return ""
		}
		return unreadIn(v, imageURLKeys, at+".image_url", func(key string, v []byte) string {
			if key == "detail" && string(bytes.TrimSpace(v)) != `"auto"` && string(bytes.TrimSpace(v)) != "null" {
				return at + ".image_url.detail" // a hint only OpenAI-compatible servers take
			}
			return ""
		})
	})
}
