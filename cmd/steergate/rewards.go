package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/judge"
	"github.com/steergate/steergate/rm/remote"
	"github.com/steergate/steergate/rm/rules"
)

// buildRewards constructs every configured reward: the model, then its
// shaping (normalization, transforms), then its score cache. Ensembles are
// built last, over the shaped members.
func buildRewards(cfg *configs.Config, backends map[string]backend.Backend, scores cache.Cache, closers *[]func()) (map[string]rm.Rewarder, error) {
	out := map[string]rm.Rewarder{}
	names := slices.Sorted(maps.Keys(cfg.Rewards))
	for pass := range 2 { // members before ensembles
		for _, name := range names {
			rc := cfg.Rewards[name]
			if (rc.Type == configs.RewardEnsemble) != (pass == 1) {
				continue
			}
			r, err := newReward(name, rc, cfg, backends, out, closers)
			if err != nil {
				return nil, fmt.Errorf("rewards.%s: %w", name, err)
			}
			if len(rc.Normalize) > 0 || len(rc.Transform) > 0 {
				norm := map[string]rm.Normalization{}
				for o, n := range rc.Normalize {
					norm[o] = rm.Normalization{Mean: n.Mean, Std: n.Std, Running: n.Running}
				}
				tr := map[string]rm.Transform{}
				for o, t := range rc.Transform {
					tr[o] = rm.Transform{Kind: t.Kind, Reference: t.Reference, Min: t.Min, Max: t.Max}
				}
				if r, err = rm.NewShaped(r, norm, tr); err != nil {
					return nil, fmt.Errorf("rewards.%s: %w", name, err)
				}
			}
			if rc.CacheOn() && scores != nil && !runningNorm(rc) {
				r = rm.NewCached(r, rewardID(name, rc, r), scores, rc.CacheTTL)
			}
			out[name] = r
		}
	}
	return out, nil
}

// runningNorm rewards change their output as they see scores, so caching
// them would freeze an early calibration.
func runningNorm(rc configs.Reward) bool {
	for _, n := range rc.Normalize {
		if n.Running {
			return true
		}
	}
	return false
}

// rewardID names a reward's scores for caching: its name, version, model
// identity and whole config, so that any change is a different key.
func rewardID(name string, rc configs.Reward, r rm.Rewarder) string {
	b, _ := json.Marshal(rc)
	h := sha256.Sum256(append(b, rm.IDOf(r)...))
	return name + "@" + rc.Version + ":" + hex.EncodeToString(h[:8])
}

func newReward(name string, rc configs.Reward, cfg *configs.Config, backends map[string]backend.Backend, built map[string]rm.Rewarder, closers *[]func()) (rm.Rewarder, error) {
	switch rc.Type {
	case configs.RewardRules:
		return rules.New(rules.Config{Objectives: rc.Objectives, NGram: rc.Rules.NGram, Regex: rc.Rules.Regex, Keywords: rc.Rules.Keywords})
	case configs.RewardJudge:
		j := rc.Judge
		if j.Mode == "density_ratio" {
			obj := ""
			if len(rc.Objectives) > 0 {
				obj = rc.Objectives[0]
			}
			return judge.NewDensityRatio(backends[j.Backend], j.Model, backends[j.WeakBackend], j.WeakModel, obj)
		}
		obj := ""
		if len(rc.Objectives) > 0 {
			obj = rc.Objectives[0]
		}
		return judge.New(backends[j.Backend], j.Model, j.Question, obj)
	case configs.RewardRemote:
		x := rc.Remote
		return remote.New(remote.Config{URL: x.URL, Model: x.Model, Version: x.Version, Input: x.Input, Output: x.Output,
			Objectives: rc.Objectives, Format: x.Format}, &http.Client{Timeout: x.Timeout})
	case configs.RewardEnsemble:
		var members []rm.Rewarder
		for _, m := range rc.Ensemble.Members {
			members = append(members, built[m])
		}
		return rm.NewEnsemble(name, members, nilIfEmpty(rc.Objectives), rc.Ensemble.Aggregate, rc.Ensemble.Lambda)
	case configs.RewardONNX, configs.RewardONNXARM:
		return newONNXReward(name, rc, cfg, closers)
	}
	return nil, fmt.Errorf("unknown reward type %q", rc.Type)
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}
