package reference

import (
	"strings"

	"github.com/steergate/steergate/backend"
)

// The reference model's chat template. Render and ParseRendered are
// inverses, so that a raw prompt rendered from messages (what the Ollama
// adapter sends to continue a message) means exactly what the messages do.
const (
	turnStart = "<|"
	turnEnd   = "|>\n"
	turnClose = "\n<|end|>\n"
)

// Render writes messages in the reference chat template. With open, the
// last message stays open so that the model continues it; otherwise an
// assistant header is added for the answer.
func Render(msgs []backend.Message, open bool) string {
	var b strings.Builder
	for i, m := range msgs {
		b.WriteString(turnStart + m.Role + turnEnd + m.Content)
		if open && i == len(msgs)-1 {
			return b.String()
		}
		b.WriteString(turnClose)
	}
	b.WriteString(turnStart + "assistant" + turnEnd)
	return b.String()
}

// ParseRendered reads a prompt written by Render back into messages and
// whether the last one is open (always true: the header of the answer opens
// an empty assistant message). ok is false for text that is not a rendered
// chat.
func ParseRendered(prompt string) (msgs []backend.Message, ok bool) {
	if !strings.HasPrefix(prompt, turnStart) {
		return nil, false
	}
	for _, turn := range strings.Split(prompt, turnClose) {
		rest, found := strings.CutPrefix(turn, turnStart)
		if !found {
			return nil, false
		}
		role, content, found := strings.Cut(rest, turnEnd)
		if !found || !roleNames[role] {
			return nil, false
		}
		msgs = append(msgs, backend.Message{Role: role, Content: content})
	}
	return msgs, msgs[len(msgs)-1].Role == "assistant"
}

var roleNames = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}
