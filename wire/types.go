package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// Content is a message's content: a string, null, or an array of content
// parts. Text is the string or the text parts joined; Parts keeps every part
// as the client sent it (text, image_url, input_audio, file, refusal, and
// types newer than this code), so that backends speaking OpenAI's wire get
// them unchanged.
type Content struct {
	Text  string
	Parts []backend.Part // nil unless content was an array
	Null  bool
}

func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*c = Content{}
	switch {
	case len(b) == 0 || isNull(b):
		c.Null = true
		return nil
	case b[0] == '"':
		if s, ok := plainString(b); ok {
			c.Text = s
			return nil
		}
		if s, ok := unquote(b); ok {
			c.Text = s
			return nil
		}
		return json.Unmarshal(b, &c.Text) // its error
	case b[0] == '[':
		raws, ok := elements(b)
		if !ok {
			return errors.New("content must be an array of content parts")
		}
		return c.decodeParts(raws)
	}
	return errors.New("content must be a string, null or an array of content parts")
}

// decodeParts decodes content given as parts, each with a decode of its
// own.
func (c *Content) decodeParts(raws [][]byte) error {
	c.Parts = make([]backend.Part, 0, len(raws))
	var text strings.Builder // linear in the parts, however many
	for i, raw := range raws {
		var p partFields
		if err := decodePart(i, raw, &p); err != nil {
			return err
		}
		// A copy: raw is the body's own bytes, which go back to the
		// server when the request is over.
		part := backend.Part{Type: p.Type, Raw: append(json.RawMessage(nil), raw...)}
		switch p.Type {
		case "":
			return partError(i, "type", "a content part needs a type")
		case "text":
			if p.Text == nil {
				return partError(i, "text", "a text part needs a text string")
			}
			part.Text = *p.Text
			text.WriteString(*p.Text)
		case "refusal":
			if p.Refusal != nil {
				part.Text = *p.Refusal
			}
		case "image_url":
			url, err := imageURL(p.ImageURL)
			if err != nil {
				return partError(i, "image_url", err.Error())
			}
			part.ImageURL = url
		}
		c.Parts = append(c.Parts, part)
	}
	c.Text = text.String()
	return nil
}

// partFields are the members of a content part the gateway reads; the
// part itself goes on as sent.
type partFields struct {
	Type     string          `json:"type"`
	Text     *string         `json:"text"`
	Refusal  *string         `json:"refusal"`
	ImageURL json.RawMessage `json:"image_url"`
}

var partKeys = knownKeys(partFields{})

// decodePart decodes content part i, its errors naming it (content[i]) as
// memberError names a member.
//
//go:noinline
func decodePart(i int, raw []byte, p *partFields) error {
	err := checkKeys(raw, partKeys)
	if err == nil {
		err = json.Unmarshal(raw, p)
	}
	if err != nil {
		return elementError("content", i, err)
	}
	return nil
}

// partError is an error about the member key of content part i. It is
// formatted off the frame of the decodes (a stream's goroutine keeps
// within 8 KiB).
//
//go:noinline
func partError(i int, key, msg string) error {
	return elementError("content", i, fault.Invalid(key, "%s", msg))
}

// imageURL reads an image_url part's url: {"url": ...} (or a bare string,
// as some clients send).
func imageURL(raw json.RawMessage) (string, error) {
	var obj struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.URL != "" {
		return obj.URL, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, nil
	}
	return "", errors.New("an image_url part needs image_url.url")
}

func (c Content) MarshalJSON() ([]byte, error) {
	switch {
	case c.Parts != nil:
		raws := make([]json.RawMessage, len(c.Parts))
		for i, p := range c.Parts {
			raws[i] = partJSON(p)
		}
		return json.Marshal(raws)
	case c.Null:
		return []byte("null"), nil
	}
	return json.Marshal(c.Text)
}

// partJSON is a part as sent, or built from its fields.
func partJSON(p backend.Part) json.RawMessage {
	if p.Raw != nil {
		return p.Raw
	}
	var v any
	switch p.Type {
	case "text":
		v = map[string]string{"type": "text", "text": p.Text}
	case "image_url":
		v = map[string]any{"type": "image_url", "image_url": map[string]string{"url": p.ImageURL}}
	default:
		v = map[string]string{"type": p.Type}
	}
	b, _ := json.Marshal(v)
	return b
}

// StringList is a string or an array of strings on the wire (stop, prompt).
type StringList []string

func (s *StringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*s = nil
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		// A wrong type, which encoding/json names the field of (stop,
		// prompt) as it does its own.
		if len(b) == 0 {
			return err
		}
		got := kindOf(b)
		if got == "array" {
			got = "array that is not all strings"
		}
		return &json.UnmarshalTypeError{Value: got, Type: reflect.TypeFor[StringList]()}
	}
	*s = many
	return nil
}

// JSONKind says what a StringList decodes from, for its errors
// (fault.WrongType).
func (StringList) JSONKind() string { return "a string or an array of strings" }

// FunctionCall is a tool call's function and its arguments (a JSON text).
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// ToolCall is an assistant message's call of a tool.
type ToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// Message is a chat message. Raw is the message as the client sent it,
// kept so that OpenAI-compatible backends get it byte for byte.
type Message struct {
	Role             string          `json:"role"`
	Content          Content         `json:"content"`
	Name             string          `json:"name,omitempty"`
	ToolCalls        []ToolCall      `json:"tool_calls,omitempty"`
	ToolCallID       string          `json:"tool_call_id,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	Raw              json.RawMessage `json:"-"`
}

// Messages decodes a messages array one message at a time, so that an
// error names the message (messages[3].content) it is about.
type Messages []Message

func (ms *Messages) UnmarshalJSON(b []byte) error {
	raws, ok := elements(b)
	if !ok {
		return fault.Invalid("messages", "messages must be an array of message objects")
	}
	out := make(Messages, len(raws))
	for i, raw := range raws {
		if err := out[i].UnmarshalJSON(raw); err != nil {
			return messageError(i, err)
		}
	}
	*ms = out
	return nil
}

// messageError names message i in its error. Formatting it is kept off
// the frame the message decodes stand on (a stream's goroutine keeps
// within 8 KiB).
//
//go:noinline
func messageError(i int, err error) error {
	if fault.Param(err) != "" {
		return memberError(fmt.Sprintf("messages[%d]", i), err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fault.WrongType(fmt.Sprintf("messages[%d].%s", i, te.Field), te)
	}
	return fault.Invalid(fmt.Sprintf("messages[%d]", i), "messages[%d]: %v", i, err)
}

// contentError is a message's error about its content: one that names a
// part or a field (content[1].text) as it is, any other as about content.
//
//go:noinline
func contentError(err error) error {
	var te *json.UnmarshalTypeError
	if fault.Param(err) != "" || errors.As(err, &te) {
		return err
	}
	return fault.Invalid("content", "%v", err)
}

type messageFields Message

var messageKeys = knownKeys(messageFields{})

// messageDecoding decodes a message (f) but its content and tool calls,
// which it keeps aside (setAside) to decode after the rest, as
// chatDecoding does the request's members.
type messageDecoding struct {
	*messageFields
	Content   rawRef `json:"content"`
	ToolCalls rawRef `json:"tool_calls"`
	f         messageFields
}

var messageAside = []string{"content", "tool_calls"}

func (d *messageDecoding) aside() []string { return messageAside }

func (d *messageDecoding) keep(v [3][]byte) { d.Content, d.ToolCalls = v[0], v[1] }

func (m *Message) UnmarshalJSON(b []byte) error {
	if m.decodePlain(b) {
		return nil
	}
	return m.decodeFull(b)
}

// decodePlain decodes the message most chats are made of, a role and a
// content that are both strings and nothing else, without encoding/json,
// into what decodeFull gives for it; false leaves any other message
// (other members, a key in another case or twice, another type) to
// decodeFull, which also reports its errors.
func (m *Message) decodePlain(b []byte) bool {
	var role, content []byte
	err := EachMember(b, func(mb Member) error {
		switch {
		case string(mb.Key) == "role" && role == nil:
			role = mb.Value
		case string(mb.Key) == "content" && content == nil:
			content = mb.Value
		default:
			return errNotPlain
		}
		return nil
	})
	if err != nil || len(role) == 0 || len(content) == 0 || role[0] != '"' || content[0] != '"' {
		return false
	}
	r, ok := unquote(role)
	if !ok {
		return false
	}
	c, ok := unquote(content)
	if !ok {
		return false
	}
	*m = Message{Role: r, Content: Content{Text: c}, Raw: append(json.RawMessage(nil), b...)}
	return true
}

// errNotPlain ends a plain decode that meets what it does not take.
var errNotPlain = errors.New("not for the plain decode")

// decodeFull decodes any message, through encoding/json.
func (m *Message) decodeFull(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return errors.New("a message must be an object")
	}
	if err := checkKeys(b, messageKeys); err != nil {
		return err
	}
	d := &messageDecoding{}
	d.messageFields = &d.f
	rest, err := restOf(b, d)
	if err != nil {
		return err
	}
	err = json.Unmarshal(rest, d)
	typeErr := trimField(err, "messageFields.")
	// The content's error comes before a wrong type elsewhere, as it
	// would from inside the decode (decodeAs).
	if d.Content != nil && (err == nil || typeErr) {
		if cerr := d.f.Content.UnmarshalJSON(d.Content); cerr != nil {
			return contentError(cerr)
		}
	}
	if err != nil {
		return err
	}
	if d.Content == nil {
		d.f.Content.Null = true // a missing content is no content, as null is
	}
	if d.ToolCalls != nil {
		if err := decodeEach("tool_calls", d.ToolCalls, &d.f.ToolCalls, decodeToolCall); err != nil {
			return err
		}
	}
	*m = Message(d.f)
	m.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// toolCallDecoding decodes a tool call but its function, which it keeps
// aside to decode after the rest, as chatDecoding does.
type toolCallDecoding struct {
	*toolCallFields
	Function rawRef `json:"function"`
}

type toolCallFields ToolCall

var toolCallKeys = knownKeys(ToolCall{})

func decodeToolCall(c *ToolCall, b []byte) error {
	if err := checkKeys(b, toolCallKeys); err != nil {
		return err
	}
	d := &toolCallDecoding{toolCallFields: (*toolCallFields)(c)}
	if err := decodeRestOf[ToolCall](b, d, "toolCallFields."); err != nil {
		return err
	}
	return decodeObject("function", d.Function, &c.Function)
}

func (m Message) MarshalJSON() ([]byte, error) {
	if m.Raw != nil {
		return m.Raw, nil
	}
	m.Raw = nil
	return json.Marshal(messageFields(m))
}

// ToolFunction is a function tool's definition.
type ToolFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// Tool is a tool the model may call, kept as sent (Raw).
type Tool struct {
	Type     string          `json:"type"`
	Function ToolFunction    `json:"function"`
	Raw      json.RawMessage `json:"-"`
}

type toolFields Tool

// decodeRestOf decodes b into d, a struct that embeds the fields of a
// type (as embedded) and keeps one of its members aside; a type error
// names the fields as the type (T) would, not as d does.
func decodeRestOf[T, D any](b []byte, d *D, embedded string) error {
	err := json.Unmarshal(b, d)
	if trimField(err, embedded) {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Type == reflect.TypeFor[D]() {
			te.Type = reflect.TypeFor[T]()
		}
	}
	return err
}

// toolDecoding decodes a tool but its function, which it keeps aside to
// decode after the rest (a level of encoding/json's frames less on the
// connection's stack), as toolCallDecoding does.
type toolDecoding struct {
	*toolFields
	Function rawRef `json:"function"`
}

var toolKeys = knownKeys(toolFields{})

func (t *Tool) UnmarshalJSON(b []byte) error {
	if err := checkKeys(b, toolKeys); err != nil {
		return err
	}
	var f toolFields
	d := &toolDecoding{toolFields: &f}
	if err := decodeRestOf[toolFields](b, d, "toolFields."); err != nil {
		return err
	}
	if err := decodeObject("function", d.Function, &f.Function); err != nil {
		return err
	}
	*t = Tool(f)
	t.Raw = append(json.RawMessage(nil), b...)
	return nil
}

func (t Tool) MarshalJSON() ([]byte, error) {
	if t.Raw != nil {
		return t.Raw, nil
	}
	return json.Marshal(toolFields(t))
}

// JSONSchema is response_format.json_schema.
type JSONSchema struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ResponseFormat is response_format, kept as sent (Raw).
type ResponseFormat struct {
	Type       string          `json:"type"`
	JSONSchema *JSONSchema     `json:"json_schema,omitempty"`
	Raw        json.RawMessage `json:"-"`
}

type responseFormatFields ResponseFormat

// responseFormatDecoding decodes response_format but its json_schema,
// which it keeps aside to decode after the rest, as toolDecoding does.
type responseFormatDecoding struct {
	*responseFormatFields
	JSONSchema rawRef `json:"json_schema"`
}

var responseFormatKeys = knownKeys(responseFormatFields{})

func (f *ResponseFormat) UnmarshalJSON(b []byte) error {
	if err := checkKeys(b, responseFormatKeys); err != nil {
		return err
	}
	var x responseFormatFields
	d := &responseFormatDecoding{responseFormatFields: &x}
	if err := decodeRestOf[responseFormatFields](b, d, "responseFormatFields."); err != nil {
		return err
	}
	if err := decodeObject("json_schema", d.JSONSchema, &x.JSONSchema); err != nil {
		return err
	}
	*f = ResponseFormat(x)
	f.Raw = append(json.RawMessage(nil), b...)
	return nil
}

func (f ResponseFormat) MarshalJSON() ([]byte, error) {
	if f.Raw != nil {
		return f.Raw, nil
	}
	return json.Marshal(responseFormatFields(f))
}

// StreamOptions is the stream_options object. Other is its first member
// besides include_usage (vLLM's continuous_usage_stats, …), which only a
// stream relayed from an OpenAI-compatible backend can serve.
type StreamOptions struct {
	IncludeUsage bool   `json:"include_usage"`
	Other        string `json:"-"`
}

type streamOptionsFields StreamOptions

var streamOptionsKeys = knownKeys(streamOptionsFields{})

// UnmarshalJSON checks the keys as the request's are (checkKeys) and
// reads include_usage without encoding/json, whose frames a stream's
// goroutine has no room for here (it keeps within 8 KiB). Its errors name
// the whole path: encoding/json gives a method's error back as it is.
func (o *StreamOptions) UnmarshalJSON(b []byte) error {
	if err := checkKeys(b, streamOptionsKeys); err != nil {
		return memberError("stream_options", err)
	}
	var f streamOptionsFields
	err := EachMember(b, func(m Member) error {
		if k, _ := m.Name(); string(k) != "include_usage" {
			if f.Other == "" {
				f.Other = string(k)
			}
			return nil
		}
		switch string(m.Value) {
		case "true", "false":
			f.IncludeUsage = string(m.Value) == "true"
		case "null":
		default:
			return streamOptionsError("stream_options.include_usage", m.Value, reflect.TypeFor[bool]())
		}
		return nil
	})
	if err == errNotObject {
		return streamOptionsError("stream_options", b, reflect.TypeFor[StreamOptions]())
	}
	if err == nil {
		*o = StreamOptions(f)
	}
	return err
}

//go:noinline
func streamOptionsError(param string, v []byte, want reflect.Type) error {
	return fault.WrongType(param, &json.UnmarshalTypeError{Value: kindOf(v), Type: want})
}

// ChatRequest is a POST /v1/chat/completions body. Fields Steergate does not
// interpret are kept in Extra and written back out by Marshal.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            Messages        `json:"messages"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	Stop                StringList      `json:"stop,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	Logprobs            bool            `json:"logprobs,omitempty"`
	TopLogprobs         *int            `json:"top_logprobs,omitempty"`
	User                string          `json:"user,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	Steering            json.RawMessage `json:"steering,omitempty"`
	// vLLM's prefill flags: continue the final (assistant) message.
	ContinueFinalMessage bool  `json:"continue_final_message,omitempty"`
	AddGenerationPrompt  *bool `json:"add_generation_prompt,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// CompletionRequest is a POST /v1/completions body.
type CompletionRequest struct {
	Model         string          `json:"model"`
	Prompt        StringList      `json:"prompt"`
	Stream        bool            `json:"stream,omitempty"`
	StreamOptions *StreamOptions  `json:"stream_options,omitempty"`
	N             *int            `json:"n,omitempty"`
	Seed          *int64          `json:"seed,omitempty"`
	Stop          StringList      `json:"stop,omitempty"`
	MaxTokens     *int            `json:"max_tokens,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	Logprobs      *int            `json:"logprobs,omitempty"`
	Echo          bool            `json:"echo,omitempty"`
	User          string          `json:"user,omitempty"`
	Steering      json.RawMessage `json:"steering,omitempty"`

	Extra map[string]json.RawMessage `json:"-"`
}

// Usage is the usage object; Extra keeps what newer servers add
// (prompt_tokens_details, completion_tokens_details, …).
type Usage struct {
	PromptTokens     int                        `json:"prompt_tokens"`
	CompletionTokens int                        `json:"completion_tokens"`
	TotalTokens      int                        `json:"total_tokens"`
	Extra            map[string]json.RawMessage `json:"-"`
}

type usageFields Usage

var usageKeys = knownKeys(usageFields{})

func (u *Usage) UnmarshalJSON(b []byte) error {
	var f usageFields
	extra, err := decodeExtra(b, &f, usageKeys)
	if err != nil {
		return err
	}
	*u = Usage(f)
	u.Extra = extra
	return nil
}

func (u Usage) MarshalJSON() ([]byte, error) { return marshalExtra(usageFields(u), u.Extra) }

// TopLogprob is one alternative token.
type TopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// TokenLogprob is one entry of logprobs.content.
type TokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []TopLogprob `json:"top_logprobs"`
}

// ChoiceLogprobs is a chat choice's logprobs object.
type ChoiceLogprobs struct {
	Content []TokenLogprob `json:"content"`
}

// ResponseMessage is the assistant message of a chat choice. Extra keeps
// the fields this package does not know (annotations, audio, …).
type ResponseMessage struct {
	Role             string                     `json:"role"`
	Content          *string                    `json:"content"`
	Refusal          *string                    `json:"refusal"`
	ToolCalls        []ToolCall                 `json:"tool_calls,omitempty"`
	ReasoningContent *string                    `json:"reasoning_content,omitempty"`
	Extra            map[string]json.RawMessage `json:"-"`
}

type responseMessageFields ResponseMessage

var responseMessageKeys = knownKeys(responseMessageFields{})

func (m *ResponseMessage) UnmarshalJSON(b []byte) error {
	var f responseMessageFields
	extra, err := decodeExtra(b, &f, responseMessageKeys)
	if err != nil {
		return err
	}
	*m = ResponseMessage(f)
	m.Extra = extra
	return nil
}

func (m ResponseMessage) MarshalJSON() ([]byte, error) {
	return marshalExtra(responseMessageFields(m), m.Extra)
}

// ChatChoice is one choice of a chat completion.
type ChatChoice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	Logprobs     *ChoiceLogprobs `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
	// StopReason is vLLM's: the stop string that ended the choice (null:
	// the end of the answer; a number: a stop token). Absent where the
	// server does not say.
	StopReason json.RawMessage `json:"stop_reason,omitempty"`
}

// ChatCompletion is a non-streaming chat response. Extra keeps the
// top-level fields this package does not know (service_tier, …).
type ChatCompletion struct {
	ID                string                     `json:"id"`
	Object            string                     `json:"object"`
	Created           int64                      `json:"created"`
	Model             string                     `json:"model"`
	Choices           []ChatChoice               `json:"choices"`
	Usage             *Usage                     `json:"usage,omitempty"`
	SystemFingerprint string                     `json:"system_fingerprint,omitempty"`
	Steering          json.RawMessage            `json:"steering,omitempty"`
	Extra             map[string]json.RawMessage `json:"-"`
}

type chatCompletionFields ChatCompletion

var chatCompletionKeys = knownKeys(chatCompletionFields{})

func (c *ChatCompletion) UnmarshalJSON(b []byte) error {
	var f chatCompletionFields
	extra, err := decodeExtra(b, &f, chatCompletionKeys)
	if err != nil {
		return err
	}
	*c = ChatCompletion(f)
	c.Extra = extra
	return nil
}

func (c ChatCompletion) MarshalJSON() ([]byte, error) {
	return marshalExtra(chatCompletionFields(c), c.Extra)
}

// ToolCallDelta is a streamed fragment of a tool call: the first for an
// index carries its id, type and name; the rest carry argument text.
type ToolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Delta is the delta of a streamed chat choice.
type Delta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
	ToolCalls        []ToolCallDelta `json:"tool_calls,omitempty"`
}

// ChunkChoice is one choice of a chat chunk.
type ChunkChoice struct {
	Index        int             `json:"index"`
	Delta        Delta           `json:"delta"`
	Logprobs     *ChoiceLogprobs `json:"logprobs,omitempty"`
	FinishReason *string         `json:"finish_reason"`
}

// ChatChunk is one server-sent event of a streaming chat response. Extra
// keeps the backend's top-level fields this package does not know.
type ChatChunk struct {
	ID                string                     `json:"id"`
	Object            string                     `json:"object"`
	Created           int64                      `json:"created"`
	Model             string                     `json:"model"`
	SystemFingerprint string                     `json:"system_fingerprint,omitempty"`
	Choices           []ChunkChoice              `json:"choices"`
	Usage             *Usage                     `json:"usage,omitempty"`
	Steering          json.RawMessage            `json:"steering,omitempty"`
	Extra             map[string]json.RawMessage `json:"-"`
}

var chatChunkKeys = knownKeys(ChatChunk{})

// CompletionLogprobs is the legacy completions logprobs object.
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// CompletionChoice is one choice of a completion (or completion chunk).
type CompletionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *CompletionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
	StopReason   json.RawMessage     `json:"stop_reason,omitempty"` // as ChatChoice's
}

// Completion is a /v1/completions response or stream chunk. Extra keeps
// the top-level fields this package does not know. Stream chunks are
// written by WriteEvent, which adds Extra without going through
// MarshalJSON (encoding/json re-reads what a Marshaler returns, which
// tripled a chunk's cost).
type Completion struct {
	ID                string                     `json:"id"`
	Object            string                     `json:"object"`
	Created           int64                      `json:"created"`
	Model             string                     `json:"model"`
	SystemFingerprint string                     `json:"system_fingerprint,omitempty"`
	Choices           []CompletionChoice         `json:"choices"`
	Usage             *Usage                     `json:"usage,omitempty"`
	Steering          json.RawMessage            `json:"steering,omitempty"`
	Extra             map[string]json.RawMessage `json:"-"`
}

type completionFields Completion

var completionAnswerKeys = knownKeys(completionFields{})

func (c *Completion) UnmarshalJSON(b []byte) error {
	var f completionFields
	extra, err := decodeExtra(b, &f, completionAnswerKeys)
	if err != nil {
		return err
	}
	*c = Completion(f)
	c.Extra = extra
	return nil
}

func (c Completion) MarshalJSON() ([]byte, error) { return marshalExtra(completionFields(c), c.Extra) }

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the GET /v1/models body.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// ErrorBody is the OpenAI error envelope.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of the error envelope.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}
