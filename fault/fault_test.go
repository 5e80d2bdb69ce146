package fault

import "testing"

func TestClipCutsWhereACharacterStarts(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{{"short", 8, "short"}, {"abcdef", 3, "abc…"}, {"aé", 2, "a…"}, {"ééé", 5, "éé…"}} {
		if got := Clip(c.s, c.n); got != c.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
