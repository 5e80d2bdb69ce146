// Package leak checks, at the end of a package's tests, that no goroutine
// they started is still running.
package leak

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Ignored are library goroutines that outlive their servers and clients
// by design: fasthttp's process-wide janitors (worker pools, the server
// date, idle-connection cleaners) and net/http's idle keep-alive
// connections.
var Ignored = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
	goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
}

// VerifyTestMain runs the tests, then the after functions (stopping what
// the tests shared), and fails if goroutines are left.
func VerifyTestMain(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if code == 0 {
		if err := goleak.Find(Ignored...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left running after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
