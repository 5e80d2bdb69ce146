package gateway_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/steergate/steergate/backend/reference"
)

// TestNodeSDK runs test/node/sdk.mjs, the official OpenAI Node SDK against
// the gateway. `make test` installs the SDK and sets STEERGATE_TEST_NODE_MODULES.
func TestNodeSDK(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	runNode(t, "sdk.mjs", e.url+"/v1")
}

// TestNodeSDKSteered runs test/node/steer.mjs: best-of-N, particles and
// guided decoding through the Node SDK, streamed and not.
func TestNodeSDKSteered(t *testing.T) {
	e := startSteered(t)
	runNode(t, "steer.mjs", e.url+"/v1")
}

// TestNodeSDKAgentLoop runs test/node/tools.mjs, an agent loop written
// with the Node SDK, through the gateway in front of a tool-calling
// backend.
func TestNodeSDKAgentLoop(t *testing.T) {
	e, _ := toolGateway(t, "openai")
	runNode(t, "tools.mjs", e.url+"/v1")
}

// runNode runs a script of test/node with the gateway's base URL.
func runNode(t *testing.T, script, url string) {
	t.Helper()
	mods := os.Getenv("STEERGATE_TEST_NODE_MODULES")
	node, err := exec.LookPath("node")
	if mods == "" || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI must run the Node SDK test: run it through make test")
		}
		t.Skip("node or STEERGATE_TEST_NODE_MODULES missing; make test installs them")
	}
	src, _ := filepath.Abs(filepath.Join("..", "test", "node", script))
	// ES modules resolve packages from the script's folder upwards, so run a
	// copy placed beside node_modules.
	dst := filepath.Join(filepath.Dir(mods), script)
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, dst, url).CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	t.Logf("%s", out)
}
