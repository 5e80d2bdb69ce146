//go:build unix

package gateway

import "syscall"

// readAheadOK: sockets are file descriptors that readFD can read.
const readAheadOK = true

// readFD reads a socket once, again after an interrupted call;
// syscall.EAGAIN when nothing has arrived.
func readFD(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Read(int(fd), b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}
