package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection, the server's
// wrapped as the gateway wraps what it accepts.
func tcpPair(t *testing.T) (*lingerConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := lingerListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return server.(*lingerConn), client
}

// The one-byte read that waits for the next request takes all that has
// arrived from the socket in one read; the reads after it get the rest
// from there, in order, and then read the socket again.
func TestReadAheadServesWhatArrived(t *testing.T) {
	if !readAheadOK {
		t.Skip("this platform reads a connection as it always does")
	}
	c, client := tcpPair(t)
	first := bytes.Repeat([]byte("a"), aheadSize+100) // more than one read ahead takes
	if _, err := client.Write(first); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []byte
	one := make([]byte, 1)
	if _, err := c.Read(one); err != nil {
		t.Fatal(err)
	}
	got = append(got, one...)
	if len(c.pending) == 0 {
		t.Fatal("the one-byte read read nothing ahead")
	}
	// What was read ahead is no longer on the socket: a read of the
	// socket itself, now, finds at most what arrived past aheadSize.
	ahead := len(c.pending)
	buf := make([]byte, 16<<10)
	for len(got) < len(first) && time.Now().Before(deadline) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && n != ahead {
			t.Errorf("the read after the one-byte read got %d bytes, want the %d read ahead", n, ahead)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("read %d bytes, want the %d written, in order", len(got), len(first))
	}
	if c.pending != nil || c.ahead != nil {
		t.Error("the read-ahead buffer is still held once drained")
	}
	// A second request on the kept-alive connection, written in two parts.
	go func() {
		client.Write([]byte("POST"))
		time.Sleep(50 * time.Millisecond)
		client.Write([]byte(" /v1"))
	}()
	got = got[:0]
	for len(got) < 8 && time.Now().Before(deadline) {
		p := buf
		if len(got) == 0 {
			p = one
		}
		n, err := c.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:n]...)
	}
	if string(got) != "POST /v1" {
		t.Errorf("read %q", got)
	}
}

// Waiting for the next request ends with the read deadline (the idle
// timeout), and with end of file when the client closes.
func TestReadAheadEnds(t *testing.T) {
	c, client := tcpPair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("at the deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	client.Close()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client gone: %v, want end of file", err)
	}
	if c.ahead != nil {
		t.Error("a read that found nothing holds a buffer")
	}
}

// After a stream the answer fasthttp writes is dropped up to the end of
// its head, wherever the writes split it; what follows goes out.
func TestDropHeadDropsOneHead(t *testing.T) {
	for _, writes := range [][]string{
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "next"},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r", "\n\r", "\nnext"},
		{"HTTP/1.1 200 OK\r\nA: \r\r\n\r\nnext"},
	} {
		server, client := tcpPair(t)
		server.dropHead = true
		for _, w := range writes {
			if n, err := server.Write([]byte(w)); err != nil || n != len(w) {
				t.Fatalf("%q: wrote %d, %v", w, n, err)
			}
		}
		if _, err := server.Write([]byte(" and after")); err != nil {
			t.Fatal(err)
		}
		server.Close()
		got, err := io.ReadAll(client)
		if err != nil || string(got) != "next and after" {
			t.Errorf("%q: the client read %q, %v", writes, got, err)
		}
	}
}
