package steering

import (
	"strings"

	"github.com/steergate/steergate/backend"
)

// A strategy that writes an answer in several backend calls (particles'
// steps, adaptive's continuations) joins texts that no single call saw
// whole: a request's stop sequence can straddle the joint, and no backend
// stops at it. These find and cut such a stop.

// stopAfter is the earliest of the request's stop sequences in text that
// ends after byte from (where the newest call's text, and any delimiter
// joined to it, begins): its offset and the sequence. ok is false when
// there is none.
func stopAfter(text string, from int, stops []string) (at int, stop string, ok bool) {
	at = len(text)
	for _, s := range stops {
		lo := max(0, from-len(s)+1)
		if s == "" || lo >= len(text) {
			continue
		}
		if i := strings.Index(text[lo:], s); i >= 0 && (lo+i < at || lo+i == at && !ok) {
			at, stop, ok = lo+i, s, true
		}
	}
	return at, stop, ok
}

// cutLogprobs drops the tokens of the last over bytes of an answer, which
// a stop cut off. Counted from the end, where the cut text is; a token
// only partly cut stays, as its start is in the answer.
func cutLogprobs(lps []backend.TokenLogprob, over int) []backend.TokenLogprob {
	for len(lps) > 0 && over >= len(lps[len(lps)-1].Token) {
		over -= len(lps[len(lps)-1].Token)
		lps = lps[:len(lps)-1]
	}
	return lps
}

// trimSteps keeps the steps that text, cut short, still holds: steps
// laid end to end, each followed by one of the delimiters or none; the
// step the cut fell in keeps what is left of it.
func trimSteps(steps []string, text string, delims []string) []string {
	pos := 0
	for i, s := range steps {
		rest := text[pos:]
		if !strings.HasPrefix(rest, s) {
			n := 0
			for n < len(rest) && n < len(s) && rest[n] == s[n] {
				n++
			}
			if n == 0 {
				return steps[:i]
			}
			return append(steps[:i:i], s[:n])
		}
		pos += len(s)
		for _, d := range delims {
			if strings.HasPrefix(text[pos:], d) {
				pos += len(d)
				break
			}
		}
	}
	return steps
}
