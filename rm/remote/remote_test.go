package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// kserve is an in-test KServe v2 server for a model "rm" that scores each
// text with two objectives: its length in bytes and whether it has "blue".
func kserve(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/models/rm/infer" || r.Method != "POST" {
			w.WriteHeader(404)
			json.NewEncoder(w).Encode(map[string]string{"error": "Request for unknown model: 'x' is not found"})
			return
		}
		var req InferRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Inputs) != 1 || req.Inputs[0].Datatype != "BYTES" {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "bad request"})
			return
		}
		var texts []string
		json.Unmarshal(req.Inputs[0].Data, &texts)
		var flat []float32
		for _, s := range texts {
			blue := float32(0)
			if strings.Contains(s, "blue") {
				blue = 1
			}
			flat = append(flat, float32(len(s)), blue)
		}
		data, _ := json.Marshal(flat)
		json.NewEncoder(w).Encode(InferResponse{ModelName: "rm", Outputs: []Tensor{{Name: "scores", Shape: []int64{int64(len(texts)), 2}, Datatype: "FP32", Data: data}}})
	}))
}

func TestRemote(t *testing.T) {
	srv := kserve(t)
	defer srv.Close()
	r, err := New(Config{URL: srv.URL, Model: "rm", Objectives: []string{"length", "blue"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.Score(context.Background(), []rm.Sample{{Prompt: "sky?", Response: "blue"}, {Prompt: "q", Response: "red"}})
	if err != nil {
		t.Fatal(err)
	}
	// plain format: "sky?\nblue" (9 bytes), "q\nred" (5 bytes)
	if got[0][0] != 9 || got[0][1] != 1 || got[1][0] != 5 || got[1][1] != 0 {
		t.Errorf("scores %v", got)
	}
	bad, _ := New(Config{URL: srv.URL, Model: "missing", Objectives: []string{"x"}}, nil)
	if _, err := bad.Score(context.Background(), []rm.Sample{{Response: "x"}}); !errors.Is(err, fault.ErrReward) || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown model: %v", err)
	}
	wrongK, _ := New(Config{URL: srv.URL, Model: "rm", Objectives: []string{"only"}}, nil)
	if _, err := wrongK.Score(context.Background(), []rm.Sample{{Response: "x"}}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("shape mismatch: %v", err)
	}
}

// Tensor data is read flat or nested row by row, as the KServe v2 protocol
// allows; a null (a server's NaN) is an error, never a score of 0.
func TestDecodeData(t *testing.T) {
	r := &Remote{c: Config{Objectives: []string{"a", "b"}}}
	for data, want := range map[string]string{
		`[1,2,3,4]`:        "[[1 2] [3 4]]",
		`[[1,2],[3,4]]`:    "[[1 2] [3 4]]",
		`[1,null,3,4]`:     "null",
		`[[1,2],[null,4]]`: "null",
		`[1,"x",3,4]`:      "value 1",
		`{"a":1}`:          "cannot unmarshal",
	} {
		rows, err := r.decode(InferResponse{Outputs: []Tensor{{Name: "s", Shape: []int64{2, 2}, Datatype: "FP32", Data: json.RawMessage(data)}}}, 2)
		got := fmt.Sprint(rows)
		if err != nil {
			got = err.Error()
			if !errors.Is(err, fault.ErrReward) {
				t.Errorf("%s: %v is no reward error", data, err)
			}
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s: %s, want %s", data, got, want)
		}
	}
}
