package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steergate/steergate/test/nodetest"
)

// The dashboard in a real browser against the embedded default, after
// traffic on the demo experiment: test/node/ui.mjs. Screenshots are kept
// in STEERGATE_TEST_ARTIFACTS (make test: the cache folder), else in a
// temporary folder; both are outside the repository.
func TestDashboardInABrowser(t *testing.T) {
	t.Chdir("../..")
	addr := serveConfig(t, "configs/default.yaml")
	base := "http://" + addr
	for i := range 40 {
		body := fmt.Sprintf(`{"model":"reference-ab","user":"u%d","seed":%d,"max_tokens":32,"messages":[{"role":"user","content":"How do tides work?"}]}`, i, i)
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	dir := os.Getenv("STEERGATE_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "ui")
	out := nodetest.Run(t, "ui.mjs", base, dir)
	t.Logf("%s\nscreenshots in %s", out, dir)
}
