package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/steergate/steergate/fault"
)

var knownCache sync.Map // reflect.Type -> map[string]bool

// knownKeys returns the JSON names of the fields of v's struct type.
func knownKeys(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if m, ok := knownCache.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	knownCache.Store(t, m)
	return m
}

// objectKeys calls fn with each key of the JSON object b, in order,
// without decoding the values: a key as written, or as its escapes spell
// it. b must be valid JSON (the caller decodes it too); anything else
// stops the scan.
func objectKeys(b []byte, fn func(key []byte) error) error {
	err := EachMember(b, func(m Member) error {
		key, err := m.Name()
		if err != nil {
			return ErrStop
		}
		return fn(key)
	})
	if err == errNotObject {
		return nil // not this scan's to report: the decode does
	}
	return err
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] == '"'.
// It jumps from quote to quote (bytes.IndexByte): a quote ends the string
// unless an odd run of backslashes before it escapes it.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		j += k
		escaped := false
		for p := j - 1; p > i && b[p] == '\\'; p-- {
			escaped = !escaped
		}
		if !escaped {
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value starting at or after i.
func skipValue(b []byte, i int) int {
	depth := 0
	for i = skipSpace(b, i); i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i) - 1
			if i < 0 {
				return -1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return i // the end of the enclosing object
			}
			if depth == 0 {
				return i + 1
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// checkKeys refuses an object whose keys repeat, also in another letter
// case, or that spells a known field in another case: encoding/json would
// read it as that field, while a backend that receives it as sent might
// not. One key, one meaning.
func checkKeys(b []byte, known map[string]bool) error {
	// The keys seen so far, compared one by one while they are few (no
	// allocation for an ordinary body), then by lower case in a map.
	var few [24][]byte
	seen := few[:0]
	var many map[string][]byte
	return objectKeys(b, func(key []byte) error {
		var prev []byte
		if many == nil {
			for _, k := range seen {
				if bytes.EqualFold(k, key) {
					prev = k
					break
				}
			}
		} else {
			prev = many[strings.ToLower(string(key))]
		}
		if prev != nil {
			if bytes.Equal(prev, key) {
				return fault.Invalid(string(key), "field %q appears twice", fault.Clip(string(key), 64))
			}
			return fault.Invalid(string(key), "fields %q and %q differ only in letter case", fault.Clip(string(prev), 64), fault.Clip(string(key), 64))
		}
		switch {
		case many == nil && len(seen) < len(few):
			seen = append(seen, key)
		case many == nil:
			many = make(map[string][]byte, 2*len(few))
			for _, k := range append(seen, key) {
				many[strings.ToLower(string(k))] = k
			}
		default:
			many[strings.ToLower(string(key))] = key
		}
		if !known[string(key)] && len(key) < 64 {
			for k := range known {
				if strings.EqualFold(k, string(key)) {
					return fault.Invalid(k, "unknown field %q: field names are case-sensitive (did you mean %q?)", fault.Clip(string(key), 64), k)
				}
			}
		}
		return nil
	})
}

// decodeExtra decodes b into v and returns the fields v does not have.
func decodeExtra(b []byte, v any, known map[string]bool) (map[string]json.RawMessage, error) {
	return decodeRest(b, b, v, known)
}

// decodeRest decodes rest (b without the members set aside) into v and
// returns the fields of b that v does not have.
func decodeRest(b, rest []byte, v any, known map[string]bool) (map[string]json.RawMessage, error) {
	if err := json.Unmarshal(rest, v); err != nil {
		return nil, err
	}
	return ExtraMembers(b, known)
}

// ExtraMembers returns the members of the object b whose names known does
// not hold (nil when there are none), found by a scan rather than a
// second decode; the values are copies.
func ExtraMembers(b []byte, known map[string]bool) (map[string]json.RawMessage, error) {
	var extra map[string]json.RawMessage
	err := EachMember(b, func(m Member) error {
		key, err := m.Name()
		if err != nil {
			return err
		}
		if !known[string(key)] {
			if extra == nil {
				extra = map[string]json.RawMessage{}
			}
			extra[string(key)] = append(json.RawMessage(nil), m.Value...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return extra, nil
}

// marshalExtra encodes v and appends the extra fields v does not have.
func marshalExtra(v any, extra map[string]json.RawMessage) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	return appendExtra(b, knownKeys(v), extra), nil
}

// appendExtra adds extra's members to the encoded object b, but for those
// known names.
func appendExtra(b []byte, known map[string]bool, extra map[string]json.RawMessage) []byte {
	if len(extra) == 0 {
		return b
	}
	b = b[:len(b)-1] // drop '}'
	for _, k := range sortedKeys(extra) {
		if known[k] {
			continue // a known field always wins over a stray copy
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, extra[k]...)
	}
	return append(b, '}')
}

// decodeRequest fills v (a pointer to a request struct) from body and
// returns the fields it does not know, untouched. Errors name the field.
func decodeRequest(body []byte, v any) (map[string]json.RawMessage, error) {
	return decodeAs(body, decoding{v: v, known: knownKeys(v)})
}

// decoding is what decodeAs decodes: v, or a struct standing in for the
// request whose fields known names, embedding it as embedded.
type decoding struct {
	v        any
	known    map[string]bool
	embedded string // the embedded struct's name, which type errors must not say
	// plain, when set, decodes the bodies it takes without encoding/json
	// (then v's members kept aside are decoded as after the full decode).
	plain func(body []byte) (extra map[string]json.RawMessage, ok bool)
}

// asider keeps some members of an object aside: aside names them (three
// at most), keep is given their values.
type asider interface {
	aside() []string
	keep(values [3][]byte)
}

// laterDecoder is a v that keeps some members aside, to decode them after
// the rest of the body.
type laterDecoder interface {
	asider
	decodeLater() error
}

// invalidBody says what is wrong with a body Valid refused, and where.
func invalidBody(body []byte) error {
	var se *json.SyntaxError
	switch err := json.Unmarshal(body, new(json.RawMessage)); {
	case body[0] != '{' && err == nil:
		return fault.Invalid("", "request body must be a JSON object, not a JSON %s", kindOf(body))
	case errors.As(err, &se) && strings.Contains(se.Error(), "exceeded max depth"):
		return fault.Invalid("", "request body nests deeper than %d levels (at byte %d)", maxNesting, se.Offset)
	case errors.As(err, &se):
		return fault.Invalid("", "request body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	}
	return fault.Invalid("", "request body is not a valid JSON object (or nests deeper than %d levels)", maxNesting)
}

func decodeAs(body []byte, d decoding) (map[string]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fault.Invalid("", "request body is empty; expected a JSON object")
	}
	if body[0] != '{' || !Valid(body) {
		return nil, invalidBody(body)
	}
	if err := unicodeText(body); err != nil {
		return nil, err
	}
	if d.plain != nil {
		if extra, ok := d.plain(body); ok {
			if l, ok := d.v.(laterDecoder); ok {
				if err := l.decodeLater(); err != nil {
					return nil, requestError(err)
				}
			}
			return extra, nil
		}
	}
	if err := checkKeys(body, d.known); err != nil {
		return nil, err
	}
	rest := body
	l, later := d.v.(laterDecoder)
	if later {
		var err error
		if rest, err = restOf(body, l); err != nil {
			return nil, requestError(err)
		}
	}
	extra, err := decodeRest(body, rest, d.v, d.known)
	typeErr := trimField(err, d.embedded)
	// encoding/json reports a wrong type only once it has read the whole
	// body, after any error of a member it decodes by a method of the
	// member's own; the members kept aside keep that order.
	if later && (err == nil || typeErr) {
		if lerr := l.decodeLater(); lerr != nil {
			err = lerr
		}
	}
	if err != nil {
		return nil, requestError(err)
	}
	return extra, nil
}

// requestError is the error a request's decode answers with, naming the
// field. Formatting it is kept off decodeAs's frame, which the decodes
// after it stand on (a stream's goroutine keeps within 8 KiB).
//
//go:noinline
func requestError(err error) error {
	var te *json.UnmarshalTypeError
	var pe *fault.ParamError
	switch {
	case errors.As(err, &pe):
		return err
	case errors.As(err, &te):
		return fault.WrongType(te.Field, te)
	}
	return fault.Invalid("", "invalid request body: %v", err)
}

// restOf gives a the members it keeps aside and returns the rest of body.
// The members' array lives on this frame, gone before the decode after it
// (a stream's goroutine keeps within 8 KiB).
//
//go:noinline
func restOf(body []byte, a asider) ([]byte, error) {
	rest, aside, err := setAside(body, a.aside()...)
	a.keep(aside)
	return rest, err
}

// trimField takes the name of an embedded struct (prefix) off the field a
// type error names, and reports whether err is one.
func trimField(err error, prefix string) bool {
	if err == nil {
		return false
	}
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return false
	}
	te.Field = strings.TrimPrefix(te.Field, prefix)
	return true
}

// DecodeStrict fills v (a pointer to a struct) from a JSON object body as
// requests are decoded, errors naming the field (repeated keys, keys in
// another case, wrong types), and refuses any field v lacks: for the
// gateway's own endpoints, where nothing passes through.
func DecodeStrict(body []byte, v any) error {
	extra, err := decodeRequest(body, v)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		k := slices.Sorted(maps.Keys(extra))[0]
		return fault.Invalid(k, "unknown field %q", fault.Clip(k, 64))
	}
	return nil
}

// chatDecoding decodes a chat request (r) but for the members each
// element of which is a decode of its own (messages, tools,
// response_format): it keeps those as they are, its fields hiding the
// request's own (encoding/json takes the shallower of two fields of one
// name).
type chatDecoding struct {
	*chatFields
	Messages       rawRef `json:"messages"`
	Tools          rawRef `json:"tools"`
	ResponseFormat rawRef `json:"response_format"`
	r              ChatRequest
}

type chatFields ChatRequest

var chatKeys = knownKeys(ChatRequest{})

// rawRef is a member kept aside: the body's own bytes, not a copy, for as
// long as the body is decoded.
type rawRef []byte

func (r *rawRef) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// DecodeChat parses a chat completions request body. The members kept
// aside are decoded after the rest of the body, not from inside
// encoding/json's decode of it: nesting one decode in another would take
// the stack of the connection's goroutine past 8 KiB, a stack it keeps
// for as long as a stream it then carries.
func DecodeChat(body []byte) (*ChatRequest, error) {
	return decodeChat(body, true)
}

// decodeChat is DecodeChat, with or without the plain decode of the
// members a request mostly has (FuzzDecodePlain compares the two).
func decodeChat(body []byte, plain bool) (*ChatRequest, error) {
	d := &chatDecoding{}
	d.chatFields = (*chatFields)(&d.r)
	dec := decoding{v: d, known: chatKeys, embedded: "chatFields."}
	if plain {
		dec.plain = d.decodePlain
	}
	extra, err := decodeAs(body, dec)
	// The request returned keeps d: not the body's bytes with it.
	d.Messages, d.Tools, d.ResponseFormat = nil, nil, nil
	if err != nil {
		return nil, err
	}
	d.r.Extra = extra
	return &d.r, nil
}

var chatAside = []string{"messages", "tools", "response_format"}

// decodePlain decodes a body whose members are the common ones below,
// each once, as written and of its plain type (a string, a number, true or
// false), and members the request has no field for, without encoding/json
// (plainMembers): it gives what the full decode gives, and keeps the same
// members aside for decodeLater. False leaves any other body, and what it
// has set, to the full decode, which also reports its errors.
func (d *chatDecoding) decodePlain(body []byte) (map[string]json.RawMessage, bool) {
	r := &d.r
	shared := plainShared{model: &r.Model, user: &r.User, stream: &r.Stream, n: &r.N, maxTokens: &r.MaxTokens,
		seed: &r.Seed, temperature: &r.Temperature, topP: &r.TopP, steering: &r.Steering}
	extra, ok := plainMembers(body, chatKeys, func(key, v []byte) (found, ok bool) {
		if found, ok := shared.set(key, v); found {
			return true, ok
		}
		switch string(key) {
		case "messages":
			d.Messages = v
		case "tools":
			d.Tools = v
		case "response_format":
			d.ResponseFormat = v
		case "logprobs":
			return true, plainBool(v, &r.Logprobs)
		case "max_completion_tokens":
			return true, plainInt(v, &r.MaxCompletionTokens)
		case "top_logprobs":
			return true, plainInt(v, &r.TopLogprobs)
		default:
			return false, false
		}
		return true, true
	})
	if !ok {
		d.r, d.Messages, d.Tools, d.ResponseFormat = ChatRequest{}, nil, nil, nil
	}
	return extra, ok
}

// plainShared points at the fields chat and completion requests share,
// for the plain decodes.
type plainShared struct {
	model, user       *string
	stream            *bool
	n, maxTokens      **int
	seed              **int64
	temperature, topP **float64
	steering          *json.RawMessage
}

// set reads a shared member into its field; found is false for any other.
func (p *plainShared) set(key, v []byte) (found, ok bool) {
	switch string(key) {
	case "model":
		return true, plainText(v, p.model)
	case "user":
		return true, plainText(v, p.user)
	case "stream":
		return true, plainBool(v, p.stream)
	case "n":
		return true, plainInt(v, p.n)
	case "max_tokens":
		return true, plainInt(v, p.maxTokens)
	case "seed":
		return true, plainInt(v, p.seed)
	case "temperature":
		return true, plainFloat(v, p.temperature)
	case "top_p":
		return true, plainFloat(v, p.topP)
	case "steering":
		*p.steering = append(json.RawMessage(nil), v...)
		return true, true
	}
	return false, false
}

// plainMembers is the scan of a plain decode. set takes each member it
// knows (found), reporting whether it read it plainly (ok); a member set
// does not know goes to the returned extra members, as the full decode
// keeps it, when its key is short ASCII without escapes and no known
// field's name in any letter case (a field set does not read plainly, or
// one the full decode refuses in another case).
// False on any other member, on a key seen before in any letter case,
// and past 16 members: the full decode then takes the body.
func plainMembers(body []byte, known map[string]bool, set func(key, v []byte) (found, ok bool)) (map[string]json.RawMessage, bool) {
	var few [16][]byte
	seen := few[:0]
	var extra map[string]json.RawMessage
	err := EachMember(body, func(m Member) error {
		for _, k := range seen {
			if bytes.EqualFold(k, m.Key) {
				return errNotPlain
			}
		}
		if len(seen) == len(few) {
			return errNotPlain
		}
		seen = append(seen, m.Key)
		if found, ok := set(m.Key, m.Value); found {
			if !ok {
				return errNotPlain
			}
			return nil
		}
		if !plainExtraKey(m.Key, known) {
			return errNotPlain
		}
		if extra == nil {
			extra = map[string]json.RawMessage{}
		}
		extra[string(m.Key)] = append(json.RawMessage(nil), m.Value...)
		return nil
	})
	if err != nil {
		return nil, false
	}
	return extra, true
}

// plainExtraKey reports whether key is short ASCII without escapes and
// no known field's name in any letter case.
func plainExtraKey(key []byte, known map[string]bool) bool {
	var low [64]byte
	if len(key) > len(low) {
		return false
	}
	for i, c := range key {
		if c >= utf8.RuneSelf || c == '\\' {
			return false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		low[i] = c
	}
	return !known[string(low[:len(key)])]
}

// plainText, plainBool, plainInt and plainFloat read a JSON string,
// boolean, integer or number (from a valid body) into out as
// encoding/json reads it into a field of that type; false for a value of
// another kind (null included) or one encoding/json would refuse, which
// the full decode then reports.
func plainText(v []byte, out *string) bool {
	if len(v) == 0 || v[0] != '"' {
		return false
	}
	s, ok := unquote(v)
	*out = s
	return ok
}

func plainBool(v []byte, out *bool) bool {
	switch string(v) {
	case "true":
		*out = true
	case "false":
		*out = false
	default:
		return false
	}
	return true
}

func plainInt[T int | int64](v []byte, out **T) bool {
	bits := 64
	if _, isInt := any(T(0)).(int); isInt {
		bits = strconv.IntSize
	}
	if !isNumber(v) {
		return false
	}
	n, err := strconv.ParseInt(string(v), 10, bits)
	if err != nil {
		return false
	}
	t := T(n)
	*out = &t
	return true
}

func plainFloat(v []byte, out **float64) bool {
	if !isNumber(v) {
		return false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return false
	}
	*out = &f
	return true
}

// isNumber reports whether v, a valid JSON value, is a number.
func isNumber(v []byte) bool { return len(v) > 0 && (v[0] == '-' || '0' <= v[0] && v[0] <= '9') }

func (d *chatDecoding) aside() []string { return chatAside }

func (d *chatDecoding) keep(v [3][]byte) {
	d.Messages, d.Tools, d.ResponseFormat = v[0], v[1], v[2]
}

func (d *chatDecoding) decodeLater() error {
	if d.Messages != nil {
		if err := d.r.Messages.UnmarshalJSON(d.Messages); err != nil {
			return err
		}
	}
	if d.Tools != nil {
		if err := decodeEach("tools", d.Tools, &d.r.Tools, (*Tool).UnmarshalJSON); err != nil {
			return err
		}
	}
	if d.ResponseFormat == nil || isNull(d.ResponseFormat) {
		return nil
	}
	d.r.ResponseFormat = new(ResponseFormat)
	return memberError("response_format", d.r.ResponseFormat.UnmarshalJSON(d.ResponseFormat))
}

// decodeEach decodes the array member name (kept aside) into out, one
// element at a time.
func decodeEach[T any](name string, b []byte, out *[]T, dec func(*T, []byte) error) error {
	raws, ok := elements(b)
	if !ok {
		// Not an array: encoding/json's own error for it.
		return decodeMember(name, b, out)
	}
	if isNull(b) {
		*out = nil
		return nil
	}
	vs := make([]T, len(raws))
	for i, raw := range raws {
		if err := dec(&vs[i], raw); err != nil {
			return elementError(name, i, err)
		}
	}
	*out = vs
	return nil
}

// kindOf names the kind of the JSON value b as encoding/json's type
// errors do (their Value).
func kindOf(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// elementError names element i of the array member name in its error.
// Formatting it is kept off the frame of the decodes (a stream's
// goroutine keeps within 8 KiB).
//
//go:noinline
func elementError(name string, i int, err error) error {
	return memberError(name+"["+strconv.Itoa(i)+"]", err)
}

// decodeMember decodes a member kept aside into v, its type errors naming
// the member as they would from inside the request's decode.
func decodeMember(name string, raw []byte, v any) error {
	if raw == nil {
		return nil
	}
	return memberError(name, json.Unmarshal(raw, v))
}

// decodeObject is decodeMember for a member that is an object of v's
// fields, whose keys it checks first as the request's are (checkKeys):
// encoding/json would read a key in another case, or the last of two, as
// the field, while a backend that receives the object as sent might not.
func decodeObject(name string, raw []byte, v any) error {
	if raw == nil {
		return nil
	}
	if err := checkKeys(raw, knownKeys(v)); err != nil {
		return memberError(name, err)
	}
	return decodeMember(name, raw, v)
}

// memberError names the member (name: a path such as tools[2]) that an
// error from inside it is about. A wrong type's field gets the path in
// front and is formatted where the decode began, which knows the whole
// path; a ParamError gets it in front of its parameter and its message.
func memberError(name string, err error) error {
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	var ne *nestedError
	var pe *fault.ParamError
	switch {
	case errors.As(err, &te):
		te.Field = strings.TrimSuffix(name+"."+te.Field, ".")
	case errors.As(err, &ne):
		return nest(name+"."+ne.at, ne.inner, ne.rel)
	case errors.As(err, &pe):
		return nest(name, pe, pe.Param)
	}
	return err
}

// nestedError is an error from inside the member at: its message says
// where once ("tools[0].function: …"), however deep the decodes that
// lengthened the path.
type nestedError struct {
	pe    *fault.ParamError // what the client is told
	at    string
	inner *fault.ParamError // the error as first made, without the path
	rel   string            // the parameter within at
}

func (e *nestedError) Error() string { return e.pe.Msg }
func (e *nestedError) Unwrap() error { return e.pe }

// nest puts inner, about rel inside the member at, at that path.
func nest(at string, inner *fault.ParamError, rel string) error {
	param := at
	if rel != "" {
		param += "." + rel
	}
	return &nestedError{pe: &fault.ParamError{Param: param, Msg: at + ": " + inner.Msg, Err: inner.Err}, at: at, inner: inner, rel: rel}
}

// DecodeCompletion parses a completions request body.
func DecodeCompletion(body []byte) (*CompletionRequest, error) {
	return decodeCompletion(body, true)
}

var completionKeys = knownKeys(CompletionRequest{})

// decodeCompletion is DecodeCompletion, with or without the plain decode
// (FuzzDecodePlain compares the two).
func decodeCompletion(body []byte, plain bool) (*CompletionRequest, error) {
	var r CompletionRequest
	dec := decoding{v: &r, known: completionKeys}
	if plain {
		dec.plain = r.decodePlain
	}
	extra, err := decodeAs(body, dec)
	if err != nil {
		return nil, err
	}
	r.Extra = extra
	return &r, nil
}

// decodePlain is chatDecoding.decodePlain for a completion request: its
// common members, a prompt that is one string among them.
func (r *CompletionRequest) decodePlain(body []byte) (map[string]json.RawMessage, bool) {
	shared := plainShared{model: &r.Model, user: &r.User, stream: &r.Stream, n: &r.N, maxTokens: &r.MaxTokens,
		seed: &r.Seed, temperature: &r.Temperature, topP: &r.TopP, steering: &r.Steering}
	extra, ok := plainMembers(body, completionKeys, func(key, v []byte) (found, ok bool) {
		if found, ok := shared.set(key, v); found {
			return true, ok
		}
		switch string(key) {
		case "prompt":
			var p string
			ok = plainText(v, &p)
			r.Prompt = StringList{p}
			return true, ok
		case "echo":
			return true, plainBool(v, &r.Echo)
		case "logprobs":
			return true, plainInt(v, &r.Logprobs)
		}
		return false, false
	})
	if !ok {
		*r = CompletionRequest{}
	}
	return extra, ok
}

// Marshal encodes a request struct and appends its Extra fields, so that
// fields Steergate does not interpret reach the backend untouched.
func Marshal(v any, extra map[string]json.RawMessage) ([]byte, error) {
	return marshalExtra(v, extra)
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
