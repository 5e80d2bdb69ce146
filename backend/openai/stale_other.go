//go:build !linux

package openai

import "net"

// peerClosed cannot look without Linux's non-blocking peek; a connection
// the server closed is then found by the call that meets it (tracker.retry).
func peerClosed(net.Conn) bool { return false }
