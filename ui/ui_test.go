package ui

import (
	"regexp"
	"strings"
	"testing"
)

// Every call of the page that changes something sends JSON: the sign-in
// cookie counts on no other request but a read (README), so a call
// without it would fail with 401 for every signed-in user.
func TestChangingCallsSendJSON(t *testing.T) {
	js, err := assets.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	calls := regexp.MustCompile(`api\([^\n]*method: "(PUT|POST|DELETE|PATCH)"[^\n]*`).FindAllString(string(js), -1)
	if len(calls) < 2 {
		t.Fatalf("found %d changing calls in app.js; the pattern no longer matches the page", len(calls))
	}
	for _, c := range calls {
		if !strings.Contains(c, `"Content-Type": "application/json"`) {
			t.Errorf("a call that changes something without JSON's content type: %s", c)
		}
	}
}
