// Package nodetest runs the Node.js scripts of test/node (the official
// OpenAI Node SDK, the browser tests) against servers a Go test started,
// with the packages make test installs.
package nodetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Run runs test/node/SCRIPT with args and returns its output; it fails
// the test when the script fails. Without node or the installed packages
// it skips, except under CI, where that is a failure.
func Run(t testing.TB, script string, args ...string) string {
	t.Helper()
	mods := os.Getenv("STEERGATE_TEST_NODE_MODULES")
	node, err := exec.LookPath("node")
	if mods == "" || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the Node tests: run them through make test")
		}
		t.Skip("node or STEERGATE_TEST_NODE_MODULES missing; make test installs them")
	}
	_, here, _, _ := runtime.Caller(0)
	src := filepath.Join(filepath.Dir(here), "..", "node", script)
	// ES modules resolve packages from the script's folder upwards, so run
	// a copy placed beside node_modules.
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(filepath.Dir(mods), script)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, append([]string{dst}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	return string(out)
}
