package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Config names the model and its tensors.
type Config struct {
	URL        string   // server base URL, e.g. http://triton:8000
	Model      string   // model name on the server
	Version    string   // optional model version
	Input      string   // BYTES input tensor name; default "TEXT"
	Output     string   // output tensor name; default: the first output
	Objectives []string // names of the output's K columns
	Format     string   // input format preset or template; default plain
}

// Remote is a KServe v2 rewarder.
type Remote struct {
	c      Config
	format *rm.Format
	hc     *http.Client
	infer  string
}

var (
	_ rm.Rewarder   = (*Remote)(nil)
	_ rm.Identified = (*Remote)(nil)
)

// New returns a rewarder for the model at c.URL; hc nil uses a default
// client (set timeouts through the context).
func New(c Config, hc *http.Client) (*Remote, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("remote reward: bad url %q", c.URL)
	}
	if c.Model == "" || len(c.Objectives) == 0 {
		return nil, fmt.Errorf("remote reward: model and objectives are required")
	}
	if c.Input == "" {
		c.Input = "TEXT"
	}
	if c.Format == "" {
		c.Format = "plain"
	}
	f, err := rm.NewFormat(c.Format)
	if err != nil {
		return nil, err
	}
	if f.Pair {
		return nil, fmt.Errorf("remote reward: the pair format needs a tokenizer; use a text format")
	}
	if hc == nil {
		hc = &http.Client{}
	}
	path := "/v2/models/" + url.PathEscape(c.Model)
	if c.Version != "" {
		path += "/versions/" + url.PathEscape(c.Version)
	}
	return &Remote{c: c, format: f, hc: hc, infer: strings.TrimRight(c.URL, "/") + path + "/infer"}, nil
}

func (r *Remote) Objectives() []string { return r.c.Objectives }
func (r *Remote) ID() string {
	return "kserve:" + r.c.URL + "/" + r.c.Model + "@" + r.c.Version + ":" + r.format.Name
}

// Tensor is a KServe v2 tensor in JSON.
type Tensor struct {
	Name     string          `json:"name"`
	Shape    []int64         `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

// InferRequest is the v2 inference request body.
type InferRequest struct {
	ID      string   `json:"id,omitempty"`
	Inputs  []Tensor `json:"inputs"`
	Outputs []struct {
		Name string `json:"name"`
	} `json:"outputs,omitempty"`
}

// InferResponse is the v2 inference response body.
type InferResponse struct {
	ModelName string   `json:"model_name"`
	Outputs   []Tensor `json:"outputs"`
	Error     string   `json:"error"`
}

func (r *Remote) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	texts := make([]string, len(samples))
	for i, s := range samples {
		t, _, err := r.format.Render(s)
		if err != nil {
			return nil, fmt.Errorf("%w: render sample %d: %w", fault.ErrReward, i, err)
		}
		texts[i] = t
	}
	data, _ := json.Marshal(texts)
	req := InferRequest{Inputs: []Tensor{{Name: r.c.Input, Shape: []int64{int64(len(texts))}, Datatype: "BYTES", Data: data}}}
	if r.c.Output != "" {
		req.Outputs = append(req.Outputs, struct {
			Name string `json:"name"`
		}{r.c.Output})
	}
	body, _ := json.Marshal(req)
	hreq, err := http.NewRequestWithContext(ctx, "POST", r.infer, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", fault.ErrReward, r.infer, err)
	}
	defer resp.Body.Close()
	const most = 64 << 20
	raw, err := io.ReadAll(io.LimitReader(resp.Body, most+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", fault.ErrReward, r.infer, err)
	}
	if len(raw) > most {
		return nil, fmt.Errorf("%w: %s: status %d, answer over %d MiB", fault.ErrReward, r.infer, resp.StatusCode, most>>20)
	}
	var out InferResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%w: %s: status %d, body not JSON: %.200s", fault.ErrReward, r.infer, resp.StatusCode, raw)
	}
	if resp.StatusCode != http.StatusOK || out.Error != "" {
		return nil, fmt.Errorf("%w: %s: status %d: %s", fault.ErrReward, r.infer, resp.StatusCode, out.Error)
	}
	return r.decode(out, len(samples))
}

func (r *Remote) decode(out InferResponse, n int) ([][]float32, error) {
	var t *Tensor
	for i := range out.Outputs {
		if r.c.Output == "" || out.Outputs[i].Name == r.c.Output {
			t = &out.Outputs[i]
			break
		}
	}
	if t == nil {
		return nil, fmt.Errorf("%w: response has no output %q", fault.ErrReward, r.c.Output)
	}
	k := len(r.c.Objectives)
	want := fmt.Sprintf("[%d] or [%d,%d]", n, n, k)
	switch {
	case len(t.Shape) == 1 && k == 1 && t.Shape[0] == int64(n):
	case len(t.Shape) == 2 && t.Shape[0] == int64(n) && t.Shape[1] == int64(k):
	default:
		return nil, fmt.Errorf("%w: output %s has shape %v, want %s", fault.ErrReward, t.Name, t.Shape, want)
	}
	switch t.Datatype {
	case "FP32", "FP64", "FP16":
	default:
		return nil, fmt.Errorf("%w: output %s is %s, want FP32", fault.ErrReward, t.Name, t.Datatype)
	}
	flat, err := flatten(t.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: output %s data: %w", fault.ErrReward, t.Name, err)
	}
	if len(flat) != n*k {
		return nil, fmt.Errorf("%w: output %s has %d values, want %d", fault.ErrReward, t.Name, len(flat), n*k)
	}
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = flat[i*k : (i+1)*k]
	}
	return rows, nil
}

// flatten reads a tensor's data, flat or nested row by row (the KServe v2
// protocol allows both). A null (how some servers write NaN) is refused:
// read as 0, it would rank as a score.
func flatten(data json.RawMessage) ([]float32, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(data, &items); err != nil {
		return nil, err
	}
	out := make([]float32, 0, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		switch {
		case len(it) > 0 && it[0] == '[':
			inner, err := flatten(it)
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
		case string(it) == "null":
			return nil, fmt.Errorf("value %d is null, not a number", i)
		default:
			var v float32
			if err := json.Unmarshal(it, &v); err != nil {
				return nil, fmt.Errorf("value %d: %w", i, err)
			}
			out = append(out, v)
		}
	}
	return out, nil
}
