package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

type golden struct {
	Text string `json:"text"`
	IDs  []int  `json:"ids"`
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*Tokenizer{}
)

func load(t testing.TB, name string) *Tokenizer {
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tok, ok := loaded[name]; ok {
		return tok
	}
	tok, err := Load(fetchTokenizer(t, name))
	if err != nil {
		t.Fatal(err)
	}
	loaded[name] = tok
	return tok
}

func goldens(t *testing.T, name string) []golden {
	path := filepath.Join("testdata", "golden", name+".golden.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden vectors: %v", err)
	}
	var gs []golden
	if err := json.Unmarshal(b, &gs); err != nil {
		t.Fatal(err)
	}
	return gs
}

func TestGoldenVectors(t *testing.T) {
	for _, name := range []string{"llama3", "qwen3", "gemma3"} {
		t.Run(name, func(t *testing.T) {
			tok := load(t, name)
			for i, g := range goldens(t, name) {
				got := tok.Encode(g.Text)
				if !slices.Equal(got, g.IDs) {
					t.Errorf("vector %d %q:\n got %v\nwant %v", i, g.Text, got, g.IDs)
					continue
				}
				want := g.Text
				if name == "qwen3" {
					want = norm.NFC.String(want) // its normalizer composes characters
				}
				if back := tok.Decode(got); back != want {
					t.Errorf("vector %d: decode %q, want %q", i, back, want)
				}
			}
		})
	}
}
