package backend_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
)

// rawStream relays a stream of one event: what the relay makes of it is
// its own affair.
type rawStream struct{ backend.Backend }

func (rawStream) RawOK(*backend.Request) bool { return true }

func (rawStream) Raw(context.Context, *backend.RawRequest) (*backend.RawAnswer, error) {
	return &backend.RawAnswer{Stream: strings.NewReader("data: {}\n\n"), Close: func() {}}, nil
}

// A relayed stream counts in steergate_backend_duration_seconds by how it
// ended, as the relay tells it at Close: a stream that broke off is an
// error, one the client left is canceled, not ok.
func TestRawStreamOutcome(t *testing.T) {
	m := metrics.NewProcess()
	b := backend.Limit(rawStream{reference.New("up", reference.Options{})}, backend.LimitOptions{MaxConcurrency: 4, MaxQueue: 4, Metrics: m})
	for _, err := range []error{nil, fmt.Errorf("%w: the backend's stream broke off", fault.ErrUpstream), fault.ErrCanceled} {
		a, rerr := b.(backend.RawProxy).Raw(context.Background(), &backend.RawRequest{Stream: true})
		if rerr != nil {
			t.Fatal(rerr)
		}
		a.Err = err
		a.Close()
	}
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "steergate_backend_duration_seconds" {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "outcome" {
					got[l.GetValue()] += s.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if want := map[string]uint64{"ok": 1, "error": 1, "canceled": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}
