package rm_test

import (
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/rm"
)

func TestFormats(t *testing.T) {
	s := rm.Sample{Messages: []backend.Message{{Role: "user", Content: "Hi?"}}, Response: "Hello."}
	for name, want := range map[string]string{
		"llama3":                          "<|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>",
		"chatml":                          "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n",
		"gemma":                           "<start_of_turn>user\nHi?<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n",
		"plain":                           "Hi?\nHello.",
		"Q: {{.Prompt}} A: {{.Response}}": "Q: Hi? A: Hello.",
	} {
		f, err := rm.NewFormat(name)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := f.Render(s)
		if err != nil || got != want {
			t.Errorf("%s: %q (%v), want %q", name, got, err, want)
		}
	}
	f, _ := rm.NewFormat("pair")
	a, b, _ := f.Render(rm.Sample{Prompt: "Q", Response: "A"})
	if a != "Q" || b != "A" {
		t.Errorf("pair %q %q", a, b)
	}
	if _, err := rm.NewFormat("vicuna"); err == nil {
		t.Error("unknown preset accepted")
	}
}

// An open turn renders the conversation and the partial answer with no end
// of turn after it, in every preset: what a token-level reward continues.
func TestRenderOpen(t *testing.T) {
	s := rm.Sample{Messages: []backend.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Why is the sky blue?"}}, Response: "The sky is"}
	for preset, turn := range map[string]string{
		"llama3": "<|start_header_id|>assistant<|end_header_id|>\n\nThe sky is",
		"chatml": "<|im_start|>assistant\nThe sky is",
		"gemma":  "<start_of_turn>model\nThe sky is",
		"plain":  "Why is the sky blue?\nThe sky is",
	} {
		f, err := rm.NewFormat(preset)
		if err != nil {
			t.Fatal(err)
		}
		open, err := f.RenderOpen(s)
		if err != nil {
			t.Fatal(err)
		}
		closed, _, _ := f.Render(s)
		if !strings.HasSuffix(open, turn) || !strings.HasPrefix(closed, open) {
			t.Errorf("%s: open turn %q (closed %q)", preset, open, closed)
		}
	}
	pair, _ := rm.NewFormat("pair")
	if _, err := pair.RenderOpen(s); err == nil {
		t.Error("pair rendered an open turn")
	}
}
