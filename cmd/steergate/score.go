package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/steering"
)

// scoreLine is one input line of `steergate score`.
type scoreLine struct {
	Prompt   json.RawMessage `json:"prompt"` // messages or a string
	Response *string         `json:"response"`
	WantJSON bool            `json:"want_json"`
}

func parseSample(line []byte) (rm.Sample, error) {
	var l scoreLine
	if err := json.Unmarshal(line, &l); err != nil {
		return rm.Sample{}, err
	}
	if l.Response == nil {
		return rm.Sample{}, fmt.Errorf(`"response" is required`)
	}
	s := rm.Sample{Response: *l.Response, WantJSON: l.WantJSON}
	switch {
	case len(l.Prompt) == 0:
		return rm.Sample{}, fmt.Errorf(`"prompt" is required: a string or an array of messages`)
	case l.Prompt[0] == '"':
		_ = json.Unmarshal(l.Prompt, &s.Prompt)
	default:
		if err := json.Unmarshal(l.Prompt, &s.Messages); err != nil {
			return rm.Sample{}, fmt.Errorf(`"prompt" must be a string or an array of {"role","content"} messages`)
		}
		if s.Messages == nil {
			s.Messages = []backend.Message{}
		}
	}
	return s, nil
}

// score reads JSON lines of samples on in and writes one JSON line of
// objective scores per sample, scoring in batches.
func score(ctx context.Context, args []string, in io.Reader, out, stderr io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	file := fs.String("config", configs.DefaultFile, "config file")
	name := fs.String("reward", "", "reward name from the config")
	batch := fs.Int("batch", 32, "samples per scoring call")
	if err := parseAll(fs, args); err != nil {
		return err
	}
	if *batch < 1 {
		return fmt.Errorf("--batch must be at least 1")
	}
	a, err := loadOffline(*file, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	r, ok := a.rewards.Rewarders[*name]
	if !ok {
		return a.noReward("--reward", *name, *file)
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	objectives := r.Objectives()
	var pending []rm.Sample
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		scores, err := r.Score(ctx, pending)
		if err != nil {
			return err
		}
		if err := rm.CheckShape(scores, len(pending), len(objectives)); err != nil {
			return err
		}
		for _, row := range scores {
			obj := make(map[string]steering.Number, len(row))
			for i, v := range row {
				obj[objectives[i]] = steering.Number(rm.Widen(v))
			}
			b, _ := json.Marshal(obj)
			w.Write(append(b, '\n'))
		}
		pending = pending[:0]
		return nil
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return fmt.Errorf("stdin line %d: %w", n, err)
		}
		pending = append(pending, s)
		if len(pending) >= *batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return flush()
}

// noReward says why a flag's reward cannot score answers: a token-level
// one (lexicon, onnx_arm, value) weighs next tokens, not answers; else it
// is not in the file.
func (a *app) noReward(flag, name, file string) error {
	if _, ok := a.rewards.Tokens[name]; ok {
		return fmt.Errorf("%s %q: a token-level reward scores next tokens for guided decoding, not answers; name a sequence reward (%v)", flag, name, slices.Sorted(maps.Keys(a.rewards.Rewarders)))
	}
	return fmt.Errorf("%s %q: no such reward in %s (have %v)", flag, name, file, slices.Sorted(maps.Keys(a.rewards.Rewarders)))
}
