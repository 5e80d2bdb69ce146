package rm

import (
	"context"
	"encoding/json"
)

// Explainer rewarders say, beside each sample's scores, what led to them:
// a process reward model's per-step scores, a judge's critique. A detail
// is a JSON object (nil: none); score caches keep it with the scores and
// the steering report shows it with the candidate.
type Explainer interface {
	Rewarder
	Explain(ctx context.Context, s []Sample) ([][]float32, []json.RawMessage, error)
}

// ScoreExplained scores samples with r and returns its details where it
// gives any (nil otherwise).
func ScoreExplained(ctx context.Context, r Rewarder, s []Sample) ([][]float32, []json.RawMessage, error) {
	if e, ok := r.(Explainer); ok {
		return e.Explain(ctx, s)
	}
	scores, err := r.Score(ctx, s)
	return scores, nil, err
}

// detailOf is details[i], or nil.
func detailOf(details []json.RawMessage, i int) json.RawMessage {
	if i < len(details) {
		return details[i]
	}
	return nil
}
