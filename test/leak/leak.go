// Package leak checks, at the end of a package's tests, that no goroutine
// they started is still running.
package leak

import (
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

// VerifyTestMain runs the tests and fails if goroutines are left.
func VerifyTestMain(m *testing.M) { goleak.VerifyTestMain(m, Ignored...) }
