//go:build !linux

package gateway

import (
	"context"
	"errors"
	"net"

	"github.com/steergate/steergate/fault"
)

var errClientGone = errors.Join(fault.ErrCanceled, errors.New("client closed the connection"))

// watchDisconnect is a no-op where the peek is not implemented; streaming
// requests still notice a gone client on their next write.
func watchDisconnect(*clock, net.Conn, context.CancelCauseFunc) func() { return func() {} }

// watcher has nothing to watch where watchDisconnect is a no-op.
type watcher struct{}

func (*watcher) close() {}
