package backend

import "testing"

// A lone choice's tokens are the usage's; one among several counts its
// logprobs, or stays unknown (0); a count the backend gave stays.
func TestCountTokens(t *testing.T) {
	g := &Generation{Usage: Usage{CompletionTokens: 9}, Choices: []Choice{{Text: "a b"}}}
	g.CountTokens()
	if g.Choices[0].Tokens != 9 {
		t.Errorf("lone choice: %d", g.Choices[0].Tokens)
	}
	g = &Generation{Usage: Usage{CompletionTokens: 9}, Choices: []Choice{{Logprobs: make([]TokenLogprob, 2)}, {}, {Tokens: 4}}}
	g.CountTokens()
	if c := g.Choices; c[0].Tokens != 2 || c[1].Tokens != 0 || c[2].Tokens != 4 {
		t.Errorf("several choices: %d %d %d", c[0].Tokens, c[1].Tokens, c[2].Tokens)
	}
}
