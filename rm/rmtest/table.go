package rmtest

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Table scores a response by looking it up; Calls counts Score calls and
// Scored the samples scored. Err, when set, is returned by every call.
type Table struct {
	Names  []string
	Rows   map[string][]float32
	Name   string
	Err    error
	Calls  atomic.Int64
	Scored atomic.Int64
}

func (t *Table) Objectives() []string { return t.Names }
func (t *Table) ID() string           { return "table:" + t.Name }

func (t *Table) Score(_ context.Context, s []rm.Sample) ([][]float32, error) {
	t.Calls.Add(1)
	if t.Err != nil {
		return nil, t.Err
	}
	out := make([][]float32, len(s))
	for i, x := range s {
		row, ok := t.Rows[x.Response]
		if !ok {
			return nil, fmt.Errorf("%w: table has no row for %q", fault.ErrReward, x.Response)
		}
		out[i] = row
		t.Scored.Add(1)
	}
	return out, nil
}
