package factory

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/judge"
	"github.com/steergate/steergate/rm/onnx"
	"github.com/steergate/steergate/rm/remote"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/rm/tokenizer"
)

// Info is what the rest of the gateway knows of a reward before any model
// is loaded: its objectives and default weights. Token-level rewards
// (onnx_arm, lexicon, value) have no objectives of answers: nil.
type Info struct {
	Objectives []string
	Weights    map[string]float64 // nil: 1 for every objective
}

// pass orders the rewards so that each is built after those it reads:
// models and rules, then ensembles of them, then value functions.
func pass(rc configs.Reward) int {
	switch rc.Type {
	case configs.RewardEnsemble:
		return 1
	case configs.RewardValue:
		return 2
	}
	return 0
}

// Describe derives every configured reward's objectives and default weights
// from the config alone: no model is loaded and no connection opened, but
// the files rewards name must exist. check-config and serve both validate
// routes against it.
func Describe(cfg *configs.Config) (map[string]Info, error) {
	out := map[string]Info{}
	var errs configs.Errors
	names := slices.Sorted(maps.Keys(cfg.Rewards))
	for p := range 3 {
		for _, name := range names {
			rc := cfg.Rewards[name]
			if pass(rc) != p {
				continue
			}
			objs, err := objectives(name, rc, out)
			if err != nil {
				at := "rewards." + name
				if p := fault.Param(err); p != "" {
					at += "." + p // the key inside the reward's config
				}
				errs = append(errs, fmt.Sprintf("%s:%s: %v", cfg.File, at, err))
				continue
			}
			info := Info{Objectives: objs, Weights: rc.Weights}
			if info.Weights == nil && rc.Type == configs.RewardRules {
				info.Weights = rules.DefaultWeights(objs)
			}
			for _, o := range slices.Sorted(maps.Keys(rc.Weights)) {
				if !slices.Contains(objs, o) {
					errs = append(errs, fmt.Sprintf("%s:rewards.%s.weights.%s: the reward has no objective %q (it has %v)", cfg.File, name, o, o, objs))
				}
			}
			for _, o := range slices.Sorted(maps.Keys(rc.Normalize)) {
				if !slices.Contains(objs, o) {
					errs = append(errs, fmt.Sprintf("%s:rewards.%s.normalize.%s: the reward has no objective %q (it has %v)", cfg.File, name, o, o, objs))
				}
			}
			for _, o := range slices.Sorted(maps.Keys(rc.Transform)) {
				if !slices.Contains(objs, o) {
					errs = append(errs, fmt.Sprintf("%s:rewards.%s.transform.%s: the reward has no objective %q (it has %v)", cfg.File, name, o, o, objs))
				}
			}
			for _, e := range templates(rc) {
				errs = append(errs, fmt.Sprintf("%s:rewards.%s.%s", cfg.File, name, e))
			}
			missing := false
			for _, f := range files(rc) {
				if _, err := os.Stat(f.path); err != nil {
					errs = append(errs, fmt.Sprintf("%s:rewards.%s.%s: %v", cfg.File, name, f.key, err))
					missing = true
				}
			}
			if !missing {
				for _, e := range inspect(rc) {
					errs = append(errs, fmt.Sprintf("%s:rewards.%s.%s", cfg.File, name, e))
				}
			}
			if rc.TokenLevel() {
				info.Objectives = nil
			}
			out[name] = info
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

type file struct{ key, path string }

// PRMObjective is a process reward's objective unless objectives names one.
const PRMObjective = "prm"

// inspect checks what a reward's files say against its config, without
// loading a model: the outputs an ONNX model's config names, a process
// reward's separator and step rule. Each error starts with its key.
func inspect(rc configs.Reward) []string {
	var errs []string
	m := rc.Model
	switch rc.Type {
	case configs.RewardONNX, configs.RewardONNXPRM:
		g, err := onnx.Inspect(m.Path)
		if err != nil {
			return []string{"onnx.path: " + err.Error()}
		}
		for _, o := range []struct{ key, name string }{{"onnx.output", m.Output}, {"onnx.gate_output", m.GateOutput}} {
			if o.name != "" && !slices.Contains(g.Outputs, o.name) {
				errs = append(errs, fmt.Sprintf("%s: model %s has no output %q; its outputs are %v", o.key, m.Path, o.name, g.Outputs))
			}
		}
		// The score output's columns, where the file says, are the
		// objectives, as loading the model checks.
		if rc.Type == configs.RewardONNX && len(errs) == 0 {
			out, k, err := g.ScoreColumns(m.Output)
			switch {
			case err != nil:
				errs = append(errs, fmt.Sprintf("onnx.path: model %s: %v", m.Path, err))
			case k > 0 && len(rc.Objectives) > 0 && k != len(rc.Objectives):
				errs = append(errs, fmt.Sprintf("objectives: model %s: output %s has %d columns but %d objectives are named (%v)", m.Path, out, k, len(rc.Objectives), rc.Objectives))
			}
		}
	}
	if rc.Type != configs.RewardONNXPRM {
		return errs
	}
	p := prmConfig(rc, "")
	if err := p.Rule.Check(); err != nil {
		errs = append(errs, "prm.aggregate: "+err.Error())
	}
	tok, err := tokenizer.Load(m.Tokenizer)
	if err != nil {
		return append(errs, "onnx.tokenizer: "+err.Error())
	}
	if _, err := onnx.SeparatorID(tok.Encode, p.Separator); err != nil {
		errs = append(errs, "prm.separator: "+err.Error())
	}
	return errs
}

// templates parses the templates a reward's config holds (a judge's
// question, a format), as the reward will parse them, and returns what is
// wrong, each error starting with its key.
func templates(rc configs.Reward) []string {
	var errs []string
	key, format, open := "", "", false
	switch rc.Type {
	case configs.RewardJudge:
		if rc.Judge.Mode == configs.JudgeDensityRatio {
			// A format renders the open turn the weak and strong models
			// continue.
			key, format, open = "judge.format", rc.Judge.Format, true
		} else if rc.Judge.Question != "" {
			if err := judge.CheckQuestion(rc.Judge.Question); err != nil {
				errs = append(errs, "judge.question: "+err.Error())
			}
		}
	case configs.RewardRemote:
		key, format = "remote.format", cmp.Or(rc.Remote.Format, "plain")
	case configs.RewardONNX, configs.RewardONNXPRM:
		key, format = "onnx.format", rc.Model.Format
	case configs.RewardONNXARM:
		key, format, open = "onnx.format", rc.Model.Format, true // it reads partial answers
	}
	if format != "" {
		if err := rm.CheckFormat(format, open); err != nil {
			errs = append(errs, key+": "+err.Error())
		}
	}
	return errs
}

// files are the files a reward reads at load.
func files(rc configs.Reward) []file {
	switch rc.Type {
	case configs.RewardONNX, configs.RewardONNXARM, configs.RewardONNXPRM:
		return []file{{"onnx.path", rc.Model.Path}, {"onnx.tokenizer", rc.Model.Tokenizer}}
	}
	return nil
}

// objectives are a reward's objective names as its config determines them.
func objectives(name string, rc configs.Reward, built map[string]Info) ([]string, error) {
	switch rc.Type {
	case configs.RewardRules:
		r, err := newRules(rc)
		if err != nil {
			return nil, err
		}
		return r.Objectives(), nil
	case configs.RewardJudge:
		if len(rc.Objectives) > 1 {
			return nil, fmt.Errorf("a judge has one objective; objectives names %d", len(rc.Objectives))
		}
		if len(rc.Objectives) == 1 {
			return rc.Objectives, nil
		}
		switch rc.Judge.Mode {
		case configs.JudgeDensityRatio:
			return []string{judge.DensityRatioObjective}, nil
		case configs.JudgeRating:
			return []string{judge.RatingObjective}, nil
		case configs.JudgeCritique:
			return []string{judge.CritiqueObjective}, nil
		}
		return []string{judge.Objective}, nil
	case configs.RewardEnsemble:
		members := make([][]string, len(rc.Ensemble.Members))
		for i, m := range rc.Ensemble.Members {
			info, ok := built[m]
			if !ok {
				return nil, fmt.Errorf("member %q failed to load", m)
			}
			members[i] = info.Objectives
		}
		objs := rm.SharedObjectives(members)
		if len(rc.Objectives) > 0 {
			for _, o := range rc.Objectives {
				if !slices.Contains(objs, o) {
					return nil, fmt.Errorf("objective %q is not shared by every member (%v)", o, rc.Ensemble.Members)
				}
			}
			objs = rc.Objectives
		}
		if len(objs) == 0 {
			return nil, fmt.Errorf("its members %v share no objective, so it would score nothing", rc.Ensemble.Members)
		}
		return objs, nil
	case configs.RewardONNX, configs.RewardRemote:
		return rc.Objectives, nil
	case configs.RewardONNXARM, configs.RewardValue:
		return nil, nil
	case configs.RewardLexicon:
		return slices.Sorted(maps.Keys(rc.Lexicon)), nil
	case configs.RewardONNXPRM:
		if len(rc.Objectives) == 1 {
			return rc.Objectives, nil
		}
		return []string{PRMObjective}, nil
	}
	return nil, fmt.Errorf("unknown reward type %q", rc.Type)
}

func newRules(rc configs.Reward) (*rules.Rules, error) {
	return rules.New(rules.Config{Objectives: rc.Objectives, NGram: rc.Rules.NGram, Regex: rc.Rules.Regex, Keywords: rc.Rules.Keywords})
}

// Set is the loaded rewards.
type Set struct {
	Rewarders map[string]rm.Rewarder
	Tokens    map[string]rm.TokenRewarder // onnx_arm and other token-level rewards
	Infos     map[string]Info
	closers   []func()
}

// Close releases every loaded model, in reverse order of loading. Safe
// after a failed Build and more than once.
func (s *Set) Close() {
	if s == nil {
		return
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// Options are what loading rewards needs beyond the config.
type Options struct {
	Backends map[string]backend.Backend // judges call these
	Scores   cache.Cache                // the score cache; nil: none
	Metrics  *metrics.Metrics
	Log      *slog.Logger
}

// Build loads every configured reward: the model, then its shaping
// (normalization, transforms), then its score cache. Ensembles are built
// last, over the shaped members. On error, what was loaded is released.
func Build(cfg *configs.Config, infos map[string]Info, o Options) (*Set, error) {
	s := &Set{Rewarders: map[string]rm.Rewarder{}, Tokens: map[string]rm.TokenRewarder{}, Infos: infos}
	names := slices.Sorted(maps.Keys(cfg.Rewards))
	for p := range 3 {
		for _, name := range names {
			rc := cfg.Rewards[name]
			if pass(rc) != p {
				continue
			}
			if err := s.add(name, rc, cfg, o); err != nil {
				s.Close()
				return nil, fmt.Errorf("rewards.%s: %w", name, err)
			}
		}
	}
	return s, nil
}

func (s *Set) add(name string, rc configs.Reward, cfg *configs.Config, o Options) error {
	switch rc.Type {
	case configs.RewardONNXARM:
		a, err := onnx.NewARM(onnxConfig(name, rc, cfg, o))
		if err != nil {
			return err
		}
		s.closers = append(s.closers, a.Close)
		s.Tokens[name] = a
		return nil
	case configs.RewardLexicon:
		l, err := rules.NewLexicon(rc.Lexicon, rc.Weights)
		if err != nil {
			return err
		}
		s.Tokens[name] = l
		return nil
	case configs.RewardValue:
		target := rc.Value.Reward
		w := s.Infos[target].Weights
		if w == nil {
			w = map[string]float64{}
			for _, o := range s.Infos[target].Objectives {
				w[o] = 1
			}
		}
		s.Tokens[name] = rm.Value{Reward: s.Rewarders[target], Weights: w}
		return nil
	}
	r, err := s.model(name, rc, cfg, o)
	if err != nil {
		return err
	}
	if want := s.Infos[name].Objectives; !slices.Equal(rm.WeightedObjectives(r), want) {
		return fmt.Errorf("the loaded model has objectives %v; the config describes %v", rm.WeightedObjectives(r), want)
	}
	// The cache keeps the model's own scores; shaping, which may depend on
	// the other candidates of a call or on running statistics, is applied
	// on top of it every time. An ensemble's members are shaped already
	// (and cache their own models' scores): it is not cached itself.
	if rc.CacheOn() && o.Scores != nil && rc.Type != configs.RewardEnsemble {
		r = rm.NewCached(r, id(name, rc, r), o.Scores, rc.CacheTTL, o.Metrics)
	} else {
		r = rm.NewIdentity(r, id(name, rc, r))
	}
	if len(rc.Normalize) > 0 || len(rc.Transform) > 0 {
		norm := map[string]rm.Normalization{}
		for obj, n := range rc.Normalize {
			norm[obj] = rm.Normalization{Mean: n.Mean, Std: n.Std, Running: n.Running, FreezeAfter: n.FreezeAfter}
		}
		tr := map[string]rm.Transform{}
		for obj, t := range rc.Transform {
			tr[obj] = rm.Transform{Kind: t.Kind, Reference: t.Reference, ReferenceQuantile: t.ReferenceQuantile, Min: t.Min, Max: t.Max}
		}
		if r, err = rm.NewShaped(r, norm, tr); err != nil {
			return err
		}
	}
	s.Rewarders[name] = r
	return nil
}

func (s *Set) model(name string, rc configs.Reward, cfg *configs.Config, o Options) (rm.Rewarder, error) {
	switch rc.Type {
	case configs.RewardRules:
		return newRules(rc)
	case configs.RewardJudge:
		j := rc.Judge
		obj := s.Infos[name].Objectives[0]
		if j.Mode == configs.JudgeDensityRatio {
			var f *rm.Format
			if j.Format != "" {
				var err error
				if f, err = rm.NewFormat(j.Format); err != nil {
					return nil, err
				}
			}
			return judge.NewDensityRatio(backend.Metered(o.Backends[j.Backend]), j.Model, backend.Metered(o.Backends[j.WeakBackend]), j.WeakModel, obj, f, j.PerToken)
		}
		switch j.Mode {
		case configs.JudgeRating:
			return judge.NewRating(backend.Metered(o.Backends[j.Backend]), j.Model, j.Question, obj)
		case configs.JudgeCritique:
			return judge.NewCritique(backend.Metered(o.Backends[j.Backend]), j.Model, j.Question, obj, j.MaxTokens, j.MaxCritique)
		}
		return judge.New(backend.Metered(o.Backends[j.Backend]), j.Model, j.Question, obj, j.Floor)
	case configs.RewardRemote:
		x := rc.Remote
		return remote.New(remote.Config{URL: x.URL, Model: x.Model, Version: x.Version, Input: x.Input, Output: x.Output,
			Objectives: rc.Objectives, Format: x.Format}, &http.Client{Timeout: x.Timeout})
	case configs.RewardEnsemble:
		var members []rm.Rewarder
		for _, m := range rc.Ensemble.Members {
			members = append(members, s.Rewarders[m])
		}
		return rm.NewEnsemble(name, rc.Ensemble.Members, members, s.Infos[name].Objectives, rc.Ensemble.Aggregate, rc.Ensemble.Lambda)
	case configs.RewardONNX:
		r, err := onnx.NewRewarder(onnxConfig(name, rc, cfg, o))
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, r.Close)
		return r.AsReward(), nil
	case configs.RewardONNXPRM:
		c := onnxConfig(name, rc, cfg, o)
		c.Objectives = nil
		p, err := onnx.NewPRM(c, prmConfig(rc, s.Infos[name].Objectives[0]))
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, p.Close)
		return p, nil
	}
	return nil, fmt.Errorf("unknown reward type %q", rc.Type)
}

func prmConfig(rc configs.Reward, objective string) onnx.PRMConfig {
	p := rc.PRM
	return onnx.PRMConfig{Objective: objective, Separator: p.Separator, Delimiter: p.Delimiter, Positive: *p.Positive,
		Rule: rm.StepRule{Aggregate: p.Aggregate, Clip: p.Clip, Delta: p.Delta}}
}

func onnxConfig(name string, rc configs.Reward, cfg *configs.Config, o Options) onnx.Config {
	m := rc.Model
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	return onnx.Config{Name: name, Library: cfg.ONNX.Library, Model: m.Path, Tokenizer: m.Tokenizer, Format: m.Format,
		Objectives: rc.Objectives, MaxLength: m.MaxLength, Truncation: m.Truncation, PadID: m.PadID, MaxBatch: m.MaxBatch,
		MaxWait: m.MaxWait, Provider: m.Provider, DeviceID: m.DeviceID, MemLimit: m.MemoryLimit, Fallback: m.Fallback, Output: m.Output, GateOutput: m.GateOutput,
		Log: log.With("reward", name), Metrics: o.Metrics}
}

// Drifts reports whether a reward's scores change as it sees more of them
// (running normalization without freeze_after): preferences are not
// learned from such scores.
func Drifts(rc configs.Reward) bool {
	for _, n := range rc.Normalize {
		if n.Running && n.FreezeAfter == 0 {
			return true
		}
	}
	return false
}

// id names a reward's scores for caching: its name, version, model
// identity and whole config, so that any change is a different key.
func id(name string, rc configs.Reward, r rm.Rewarder) string {
	b, _ := json.Marshal(rc)
	h := sha256.Sum256(append(b, rm.IDOf(r)...))
	return name + "@" + rc.Version + ":" + hex.EncodeToString(h[:8])
}
