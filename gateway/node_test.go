package gateway_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/steergate/steergate/backend/reference"
)

// TestNodeSDK runs test/node/sdk.mjs, the official OpenAI Node SDK against
// the gateway. `make test` installs the SDK and sets STEERGATE_NODE_MODULES.
func TestNodeSDK(t *testing.T) {
	mods := os.Getenv("STEERGATE_NODE_MODULES")
	node, err := exec.LookPath("node")
	if mods == "" || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the Node SDK test: run it through make test")
		}
		t.Skip("node or STEERGATE_NODE_MODULES missing; make test installs them")
	}
	e := start(t, defaultOptions(), ref(reference.Options{}))
	script, _ := filepath.Abs("../test/node/sdk.mjs")
	// ES modules resolve packages from the script's folder upwards, so run a
	// copy placed beside node_modules.
	dst := filepath.Join(filepath.Dir(mods), "sdk.mjs")
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, dst, e.url+"/v1").CombinedOutput()
	if err != nil {
		t.Fatalf("node sdk: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
