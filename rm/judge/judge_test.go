package judge

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

func TestYesNo(t *testing.T) {
	lp := backend.TokenLogprob{Token: "Yes", Logprob: math.Log(0.4), Top: []backend.TopLogprob{
		{Token: "Yes", Logprob: math.Log(0.4)}, {Token: " yes", Logprob: math.Log(0.1)}, {Token: "**YES**", Logprob: math.Log(0.05)},
		{Token: "▁No", Logprob: math.Log(0.15)}, {Token: "no.", Logprob: math.Log(0.05)}, {Token: "Maybe", Logprob: math.Log(0.02)},
	}}
	// Every spelling counts: yes 0.4 + 0.1 + 0.05, no 0.15 + 0.05.
	got, err := YesNo(lp, nil)
	if want := math.Log(0.55) - math.Log(0.2); err != nil || math.Abs(got-want) > 1e-12 {
		t.Errorf("YesNo = %v (%v), want %v", got, err, want)
	}
	// No "No" listed: at most the smallest listed probability (0.02), or
	// the configured floor.
	lp.Top = append(lp.Top[:3], lp.Top[5])
	if got, err := YesNo(lp, nil); err != nil || math.Abs(got-(math.Log(0.55)-math.Log(0.02))) > 1e-12 {
		t.Errorf("YesNo without No = %v (%v)", got, err)
	}
	floor := -20.0
	if got, err := YesNo(lp, &floor); err != nil || math.Abs(got-(math.Log(0.55)+20)) > 1e-12 {
		t.Errorf("YesNo with a floor = %v (%v)", got, err)
	}
	// Neither word, or no alternatives at all: a reward error, never a 0
	// that would outrank a confident No.
	if _, err := YesNo(backend.TokenLogprob{Token: "Maybe", Top: []backend.TopLogprob{{Token: "Maybe"}, {Token: "Perhaps"}}}, nil); err == nil {
		t.Error("neither word listed: no error")
	}
	if _, err := YesNo(backend.TokenLogprob{Token: "Yes"}, nil); err == nil {
		t.Error("no alternatives: no error")
	}
}

// The judge reads the whole conversation; the rating judge has its own
// objective, and a yes/no judge on a backend without logprobs is a reward
// error that names the fix, never a rating under the log-odds' name.
func TestJudgeConversationAndRating(t *testing.T) {
	s := rm.Sample{Messages: []backend.Message{{Role: "system", Content: "Be kind."}, {Role: "user", Content: "Hi"},
		{Role: "assistant", Content: "Hello"}, {Role: "user", Content: "Is the sky blue?"}}, Response: "Yes."}
	if got := conversation(s); got != "system: Be kind.\nuser: Hi\nassistant: Hello\nuser: Is the sky blue?" {
		t.Errorf("conversation %q", got)
	}
	b := &scripted{Backend: noLogprobs{reference.New("r", reference.Options{})}, text: "Rating: 7"}
	r, err := NewRating(b, "reference", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if o := r.Objectives(); len(o) != 1 || o[0] != RatingObjective {
		t.Errorf("objectives %v", o)
	}
	got, err := r.Score(context.Background(), []rm.Sample{s})
	if err != nil || got[0][0] != 7 {
		t.Errorf("rating %v (%v)", got, err)
	}
	if q := b.last.Messages[0].Content; !strings.Contains(q, "Rate the answer from 1") || !strings.Contains(q, "system: Be kind.") || b.last.Logprobs {
		t.Errorf("rating request %+v", b.last)
	}
	y, err := New(b, "reference", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := y.Score(context.Background(), []rm.Sample{s}); !errors.Is(err, fault.ErrReward) || !strings.Contains(err.Error(), "judge.mode: rating") {
		t.Errorf("yes_no without logprobs: %v", err)
	}
}

type noLogprobs struct{ backend.Backend }

func (n noLogprobs) Caps() backend.Caps { c := n.Backend.Caps(); c.Logprobs = false; return c }

func TestParseRating(t *testing.T) {
	for in, want := range map[string]float64{"8": 8, " 10/10": 10, "Rating: 3.": 3, "7.5": 7.5, "Rating 1-10: 9": 9, "6 out of 10": 6, "On a scale of 1 to 10, 4.": 4} {
		if got, err := ParseRating(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "great", "11", "0", "-3", "4/5", "90%", "9 out of 100", "0.5"} {
		if _, err := ParseRating(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The judge asks one greedy token with alternatives and reads the Yes/No
// odds from them. No model small enough to run here answers Yes or No to
// the question, so a scripted backend stands in for one.
func TestJudgeReadsTheOdds(t *testing.T) {
	b := &scripted{Backend: reference.New("r", reference.Options{})}
	j, err := New(b, "judge-model", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Score(context.Background(), []rm.Sample{
		{Prompt: "Is the sky blue?", Response: "Yes, because air scatters blue light."},
		{Prompt: "Is the sky blue?", Response: "It is green."},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := math.Log(0.8) - math.Log(0.1); math.Abs(float64(got[0][0])-want) > 1e-5 {
		t.Errorf("good answer %v, want %v", got[0][0], want)
	}
	if want := math.Log(0.2) - math.Log(0.7); math.Abs(float64(got[1][0])-want) > 1e-5 {
		t.Errorf("bad answer %v, want %v", got[1][0], want)
	}
	r := b.last
	if r.Model != "judge-model" || r.Temperature == nil || *r.Temperature != 0 || r.MaxTokens != 1 || !r.Logprobs || r.TopLogprobs != 20 {
		t.Errorf("judge request %+v", r)
	}
	if q := r.Messages[0].Content; !strings.Contains(q, "user: Is the sky blue?") || !strings.Contains(q, "Reply with Yes or No") {
		t.Errorf("question %q", q)
	}
}

// scripted answers a judge's question: with text when set, else Yes is
// likely when the answer says "blue".
type scripted struct {
	backend.Backend
	text string
	mu   sync.Mutex
	last *backend.Request
}

func (s *scripted) Generate(_ context.Context, r *backend.Request) (*backend.Generation, error) {
	s.mu.Lock()
	s.last = r
	s.mu.Unlock()
	if s.text != "" {
		return &backend.Generation{Choices: []backend.Choice{{Text: s.text}}}, nil
	}
	yes, no := 0.2, 0.7
	if strings.Contains(r.Messages[0].Content, "Answer: Yes, because") {
		yes, no = 0.8, 0.1
	}
	lp := backend.TokenLogprob{Token: "Yes", Logprob: math.Log(yes), Top: []backend.TopLogprob{
		{Token: "Yes", Logprob: math.Log(yes)}, {Token: "No", Logprob: math.Log(no)}, {Token: "Maybe", Logprob: math.Log(0.05)}}}
	return &backend.Generation{Choices: []backend.Choice{{Text: "Yes", Logprobs: []backend.TokenLogprob{lp}}}}, nil
}

// On the reference model the question's answer starts with neither Yes nor
// No: a reward error naming what it said instead, never a made-up score.
func TestJudgeOnReferenceRefuses(t *testing.T) {
	j, err := New(reference.New("reference", reference.Options{}), "reference", "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = j.Score(context.Background(), []rm.Sample{{Prompt: "Is the sky blue?", Response: "Yes."}})
	if !errors.Is(err, fault.ErrReward) || !strings.Contains(err.Error(), "neither Yes nor No") {
		t.Errorf("default question on the reference: %v", err)
	}
}

func TestDensityRatioOnReference(t *testing.T) {
	strong := reference.New("strong", reference.Options{})
	weak := reference.New("weak", reference.Options{})
	d, err := NewDensityRatio(strong, "reference", weak, "reference", "", nil, false)
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

// silent scores text without a token: a server whose echo gave no
// logprobs.
type silent struct{ *reference.Backend }

func (silent) ScoreText(context.Context, *backend.Request, string) (*backend.Score, error) {
	return &backend.Score{}, nil
}

// A backend that gives no logprobs for the answer fails the sample: the
// ratio of two sums over nothing would read as a confident score.
func TestDensityRatioWithoutLogprobs(t *testing.T) {
	for _, pair := range [][2]backend.Backend{
		{silent{reference.New("strong", reference.Options{})}, reference.New("weak", reference.Options{})},
		{silent{reference.New("strong", reference.Options{})}, silent{reference.New("weak", reference.Options{})}},
	} {
		d, err := NewDensityRatio(pair[0], "reference", pair[1], "reference", "", nil, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d.Score(context.Background(), []rm.Sample{{Prompt: "The sky", Response: " is blue."}}); !errors.Is(err, fault.ErrReward) {
			t.Errorf("scored %v (%v), want a reward error", got, err)
		}
	}
}

// A critique judge keeps its critique as the sample's detail and scores
// by the last "Score: N"; nonsense is a reward error, never a 0.
func TestCritique(t *testing.T) {
	for text, want := range map[string]float64{
		"Clear and correct.\nScore: 8": 8,
		"It rambles.\n**Score:** 3/10": 3,
		"First I thought score: 2.\nOn reflection, fine.\nFinal score = 7.5 out of 10": 7.5,
	} {
		critique, v, err := ParseCritique(text)
		if err != nil || v != want || critique == "" || strings.Contains(critique, "core: 8") {
			t.Errorf("%q: %q %v %v", text, critique, v, err)
		}
	}
	for _, bad := range []string{"blah blah", "Great answer! 10/10", "Fine.\nScore: 11", "Score: 0", "Score: 6",
		"Good.\nScore: 4/5", "Good.\nScore: 9/100", "Good.\nScore: 5%", "Good.\n**Score:** 4 out of 5"} {
		if _, _, err := ParseCritique(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	b := &scripted{Backend: noLogprobs{reference.New("r", reference.Options{})}, text: "The answer explains the cause well, though briefly.\nScore: 8"}
	j, err := NewCritique(b, "critic", "", "", 0, 20)
	if err != nil {
		t.Fatal(err)
	}
	s := []rm.Sample{{Prompt: "Why is the sky blue?", Response: "Air scatters blue light."}}
	scores, details, err := j.Explain(context.Background(), s)
	if err != nil || scores[0][0] != 8 {
		t.Fatalf("%v %v", scores, err)
	}
	if string(details[0]) != `{"critique":"The answer explains…"}` {
		t.Errorf("detail %s", details[0])
	}
	if j.Objectives()[0] != CritiqueObjective || b.last.MaxTokens != DefaultCritiqueTokens || !strings.Contains(b.last.Messages[0].Content, `"Score: N"`) {
		t.Errorf("objective %v, request %+v", j.Objectives(), b.last)
	}
	b.text = "I cannot judge this."
	if _, err := j.Score(context.Background(), s); !errors.Is(err, fault.ErrReward) || !strings.Contains(err.Error(), `no "Score: N" line`) {
		t.Errorf("nonsense: %v", err)
	}
}
