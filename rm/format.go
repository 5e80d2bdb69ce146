package rm

import (
	"fmt"
	"strings"
	"text/template"

	"github.com/steergate/steergate/backend"
)

// Format renders a sample as the text a reward model was trained on. It is
// a Go text/template over .Messages (the conversation, []backend.Message),
// .Prompt (the raw prompt or last user message) and .Response.
type Format struct {
	Name string
	t    *template.Template
	// Pair is true for models that read (question, answer) as a text pair
	// (DeBERTa-style): First and Second render the two halves.
	Pair bool
}

// Presets for common reward-model families.
var presets = map[string]string{
	"llama3": `{{range .Messages}}<|start_header_id|>{{.Role}}<|end_header_id|>

{{.Content}}<|eot_id|>{{end}}<|start_header_id|>assistant<|end_header_id|>

{{.Response}}<|eot_id|>`,
	"chatml": `{{range .Messages}}<|im_start|>{{.Role}}
{{.Content}}<|im_end|>
{{end}}<|im_start|>assistant
{{.Response}}<|im_end|>
`,
	"gemma": `{{range .Messages}}<start_of_turn>{{if eq .Role "assistant"}}model{{else}}{{.Role}}{{end}}
{{.Content}}<end_of_turn>
{{end}}<start_of_turn>model
{{.Response}}<end_of_turn>
`,
	"plain": `{{.Prompt}}
{{.Response}}`,
}

// NewFormat returns the preset called name, or parses name as a template
// when it contains "{{". The preset "pair" renders the prompt and response
// as a text pair.
func NewFormat(name string) (*Format, error) {
	if name == "pair" {
		return &Format{Name: name, Pair: true}, nil
	}
	src, ok := presets[name]
	if !ok {
		if !strings.Contains(name, "{{") {
			return nil, fmt.Errorf("unknown format %q: use llama3, chatml, gemma, plain, pair or a Go template", name)
		}
		src, name = name, "custom"
	}
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("format template: %w", err)
	}
	return &Format{Name: name, t: t}, nil
}

type formatData struct {
	Messages []backend.Message
	Prompt   string
	Response string
}

func data(s Sample) formatData {
	msgs := s.Messages
	if msgs == nil {
		msgs = []backend.Message{{Role: "user", Content: s.Prompt}}
	}
	return formatData{Messages: msgs, Prompt: s.PromptText(), Response: s.Response}
}

// Render returns the sample's text (for a pair format, the two halves).
func (f *Format) Render(s Sample) (first, second string, err error) {
	if f.Pair {
		return s.PromptText(), s.Response, nil
	}
	var b strings.Builder
	if err := f.t.Execute(&b, data(s)); err != nil {
		return "", "", err
	}
	return b.String(), "", nil
}

// CheckFormat makes the format called name and renders a sample
// conversation with it (an open turn too, for open), so that a template
// that names a field the data lacks is found when a config is checked,
// not at the first request.
func CheckFormat(name string, open bool) error {
	f, err := NewFormat(name)
	if err != nil {
		return err
	}
	s := Sample{Messages: []backend.Message{{Role: "system", Content: "s"}, {Role: "user", Content: "q"}}, Response: "a"}
	if _, _, err := f.Render(s); err != nil {
		return fmt.Errorf("format template: %w", err)
	}
	if open && !f.Pair {
		if _, err := f.RenderOpen(s); err != nil {
			return fmt.Errorf("format template: %w", err)
		}
	}
	return nil
}

// openMarker stands for the response while a format renders an open turn.
const openMarker = "\x00steergate-response\x00"

// RenderOpen renders the sample's conversation up to where the response
// begins: an open assistant turn, which a model continues (a density ratio
// scoring an answer as raw text, a token-level reward reading a partial
// answer). The response, if any, follows as text, with no end of turn.
func (f *Format) RenderOpen(s Sample) (string, error) {
	if f.Pair {
		return "", fmt.Errorf("the pair format has no open turn")
	}
	resp := s.Response
	s.Response = openMarker
	var b strings.Builder
	if err := f.t.Execute(&b, data(s)); err != nil {
		return "", err
	}
	before, _, ok := strings.Cut(b.String(), openMarker)
	if !ok {
		return "", fmt.Errorf("format %s does not render the response", f.Name)
	}
	return before + resp, nil
}
