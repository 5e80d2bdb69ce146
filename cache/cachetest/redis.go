// Package cachetest owns test helpers for caches: a real redis-server on a
// free loopback port, or a cluster of them, started and stopped by the
// test.
package cachetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process.
type Server struct {
	Addr string
	port int
	cmd  *exec.Cmd
	t    testing.TB
}

// StartRedis starts redis-server (from the Debian package that make test
// installs) on a free loopback port, without persistence, and stops it when
// the test ends. Without the binary it skips, except in CI, where it fails.
func StartRedis(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is required in CI (make test installs it)")
		}
		t.Skip("redis-server not installed: make test installs it")
	}
	s := newServer(t)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// newServer picks a free loopback port for a server not yet started.
func newServer(t testing.TB) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, t: t}
}

// Client is a go-redis client of the server, closed when the test ends:
// each one stands for a replica of the gateway.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Start (re)starts the server on its port and waits until it accepts.
func (s *Server) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no")
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.wait()
}

// wait waits until the server accepts connections.
func (s *Server) wait() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server did not listen on %s", s.Addr)
}

// Stop kills the server (like a crash) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused server must wake to die
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the server's process (SIGSTOP): it keeps its connections but
// answers nothing, like a hung server.
func (s *Server) Pause() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// StartCluster starts n redis-server nodes in cluster mode on free
// loopback ports, joins them into one cluster (redis-cli --cluster create,
// no replicas, every slot covered) and stops them when the test ends. It
// returns the nodes' addresses.
func StartCluster(t testing.TB, n int) []string {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is required in CI (make test installs it)", bin)
			}
			t.Skipf("%s not installed: make test installs it", bin)
		}
	}
	dir := t.TempDir()
	var addrs []string
	for i := range n {
		s := newServer(t)
		s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--protected-mode", "no", "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("%s/nodes-%d.conf", dir, i),
			"--cluster-node-timeout", "2000", "--dir", dir)
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		s.wait()
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Wait until every node sees the cluster as ok.
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		for {
			out, _ := exec.Command("redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			if strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster not ok at %s:\n%s", a, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}
