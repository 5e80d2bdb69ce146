package judge

import (
	"context"
	"math"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/rm"
)

func TestYesNo(t *testing.T) {
	lp := backend.TokenLogprob{Token: "Yes", Logprob: math.Log(0.5), Top: []backend.TopLogprob{
		{Token: "Yes", Logprob: math.Log(0.5)}, {Token: " yes", Logprob: math.Log(0.1)},
		{Token: "No", Logprob: math.Log(0.2)}, {Token: "Maybe", Logprob: math.Log(0.05)},
	}}
	if got, want := YesNo(lp), math.Log(0.6)-math.Log(0.2); math.Abs(got-want) > 1e-12 {
		t.Errorf("YesNo = %v, want %v", got, want)
	}
	lp.Top = lp.Top[:2] // no "No": estimated by the smallest listed
	if got, want := YesNo(lp), math.Log(0.6)-math.Log(0.1); math.Abs(got-want) > 1e-12 {
		t.Errorf("YesNo without No = %v, want %v", got, want)
	}
}

func TestParseRating(t *testing.T) {
	for in, want := range map[string]float64{"8": 8, " 10/10": 10, "Rating: 3.": 3} {
		if got, err := ParseRating(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "great", "11", "0"} {
		if _, err := ParseRating(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The reference model has logprobs, so the judge reads its Yes/No
// distribution; the score must be the in-process model's own log-odds.
func TestJudgeOnReference(t *testing.T) {
	b := reference.New("reference", reference.Options{})
	j, err := New(b, "reference", "", "")
	if err != nil {
		t.Fatal(err)
	}
	s := []rm.Sample{{Prompt: "Is the sky blue?", Response: "Yes, because air scatters blue light."}}
	got, err := j.Score(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := j.ask(context.Background(), j.question, s[0], true)
	if err != nil {
		t.Fatal(err)
	}
	if want := YesNo(c.Logprobs[0]); math.Abs(float64(got[0][0])-want) > 1e-5 || math.IsInf(want, 0) {
		t.Errorf("judge %v, want %v", got[0][0], want)
	}
}

func TestDensityRatioOnReference(t *testing.T) {
	strong := reference.New("strong", reference.Options{})
	weak := reference.New("weak", reference.Options{})
	d, err := NewDensityRatio(strong, "reference", weak, "reference", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Score(context.Background(), []rm.Sample{{Prompt: "The sky", Response: " looks blue because air scatters light."}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0][0] != 0 { // the same model on both sides: ratio 1
		t.Errorf("log ratio of a model with itself = %v", got[0][0])
	}
}
