package gateway_test

import (
	"testing"

	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/test/nodetest"
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
	t.Logf("%s", nodetest.Run(t, script, url))
}
