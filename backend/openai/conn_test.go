package openai

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/fault"
	"github.com/valyala/fasthttp"
)

// An abort that lands just after its call finished closes a connection
// already back in the pool; the next call that picks it must not fail
// for it: nothing of it reached the server, so it is sent again on a new
// connection. A call aborted itself is not.
func TestClosedPooledConnectionIsRetried(t *testing.T) {
	c, err := New("upstream", backendtest.StartReference(t, reference.Options{})+"/v1", "", FlavourVLLM, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dialled := recordDials(c)
	req := func(ctx context.Context) error {
		_, err := c.Generate(ctx, &backend.Request{Model: "reference", Prompt: "Hello", MaxTokens: 4, Seed: ptr(int64(1))})
		return err
	}
	ctx := context.Background()
	if err := req(ctx); err != nil {
		t.Fatal(err)
	}
	dialled()[0].Close() // idle in the pool, closed as a late abort would
	if err := req(ctx); err != nil {
		t.Fatalf("a call on a connection closed in the pool: %v", err)
	}
	if n := len(dialled()); n != 2 {
		t.Errorf("%d connections dialled, want 2", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := req(cancelled); err == nil {
		t.Error("a cancelled call succeeded")
	}
}

func ptr[T any](v T) *T { return &v }

// recordDials makes c note every connection it dials; the result lists
// them.
func recordDials(c *Client) func() []net.Conn {
	var mu sync.Mutex
	var conns []net.Conn
	dial := c.hc.Dial
	c.hc.Dial = func(addr string) (net.Conn, error) {
		conn, err := dial(addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
		return conn, err
	}
	return func() []net.Conn {
		mu.Lock()
		defer mu.Unlock()
		return append([]net.Conn(nil), conns...)
	}
}

// At most maxDials connections to a backend are dialled at once; a dial
// that finds no slot waits for one, within its timeout.
func TestDialsWaitForASlot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr := newTracker()
	for range maxDials {
		tr.dials <- struct{}{} // every slot taken
	}
	start := time.Now()
	if _, err := tr.dial(50 * time.Millisecond)(ln.Addr().String()); !errors.Is(err, fasthttp.ErrDialTimeout) {
		t.Fatalf("a dial with no slot: %v, want a dial timeout", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up after %s, before its timeout", waited)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		<-tr.dials // one slot frees
	}()
	c, err := tr.dial(5 * time.Second)(ln.Addr().String())
	if err != nil {
		t.Fatalf("a dial given a slot: %v", err)
	}
	c.Close()
	if n := len(tr.dials); n != maxDials-1 {
		t.Errorf("%d slots taken after the dial, want %d", n, maxDials-1)
	}
}

// A server closes a kept-alive connection once it has been idle for a
// while (uvicorn, which serves vLLM, and llama.cpp's server after 5 s).
// The calls after such a pause must not fail for it, however many pooled
// connections went stale: those idle long enough are looked at before a
// call goes out on them, and a call that meets a connection the server
// closed as it went out is sent again on another.
func TestServerClosedIdleConnections(t *testing.T) {
	for _, c := range []struct {
		name      string
		keepAlive time.Duration // the server's
		pause     time.Duration // between the burst and the calls after
	}{
		{"looked at before use", 200 * time.Millisecond, 400 * time.Millisecond},
		{"closed sooner than the client looks", 10 * time.Millisecond, 40 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			ref, err := url.Parse(backendtest.StartReference(t, reference.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(ref), IdleTimeout: c.keepAlive}
			go srv.Serve(ln)
			defer srv.Close()
			cl, err := New("upstream", "http://"+ln.Addr().String()+"/v1", "", FlavourVLLM, 16, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			dialled := recordDials(cl)
			req := func() error {
				_, err := cl.Generate(context.Background(), &backend.Request{Model: "reference", Prompt: "Hello", MaxTokens: 4, Seed: ptr(int64(1))})
				return err
			}
			// A burst leaves 8 connections in the pool, more than the
			// client's default of 5 attempts a call.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Go(func() { errs <- req() })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			burst := len(dialled())
			if burst < 2 {
				t.Fatalf("the burst dialled %d connections", burst)
			}
			for round := range 3 {
				time.Sleep(c.pause)
				for i := range 4 {
					if err := req(); err != nil {
						t.Fatalf("round %d, call %d after the server closed the idle connections: %v", round, i, err)
					}
				}
			}
		})
	}
}

// Over TLS too, a cancelled call closes its connection: the call header
// is watched for before TLS encrypts it. The server here never answers,
// so only the closed connection ends the call, and the server sees it.
func TestCancelOverTLS(t *testing.T) {
	gone := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then net/http watches the connection
		<-r.Context().Done()               // the client closed it
		close(gone)
	}))
	srv.StartTLS()
	defer srv.Close()
	cl, err := New("upstream", srv.URL+"/v1", "", FlavourOpenAI, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	cl.calls.tls.RootCAs = roots
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := cl.Generate(ctx, &backend.Request{Model: "m", Prompt: "Hello", MaxTokens: 4})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the call is waiting on the server
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled call succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled call is still waiting on the server")
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the server never saw the connection close")
	}
}

// A server's error keeps its message, param and its own code (a string:
// vLLM and llama.cpp put the HTTP status there), whichever shape the body
// has.
func TestStatusErrorKeepsTheServersCode(t *testing.T) {
	for body, want := range map[string]struct{ msg, param, code string }{
		`{"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`: {"up: too long", "messages", "context_length_exceeded"},
		`{"error":{"message":"bad temp","type":"BadRequestError","param":"temperature","code":400}}`:                          {"up: bad temp", "temperature", ""},
		`{"object":"error","message":"old vllm","type":"BadRequestError","param":null,"code":400}`:                            {"up: old vllm", "", ""},
		`{"error":"a string"}`: {"up: a string", "", ""}, // TGI's shape
		`not json`:             {"up: not json", "", ""},
	} {
		err := statusErr("up", 400, []byte(body))
		var pe *fault.ParamError
		if !errors.As(err, &pe) || pe.Msg != want.msg || pe.Param != want.param || pe.Code != want.code || !errors.Is(err, fault.ErrInvalid) {
			t.Errorf("%s: %#v", body, pe)
		}
	}
}

// A streamed chunk's system_fingerprint and top-level fields this package
// does not know go on with its deltas, and into the answer (but for a
// chunk's own obfuscation padding).
func TestStreamKeepsTheFingerprint(t *testing.T) {
	body := "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"system_fingerprint\":\"fp_9\",\"service_tier\":\"flex\",\"obfuscation\":\"k3\"," +
		"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"
	var deltas []backend.Delta
	g, err := readStream(strings.NewReader(body), &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Content: "q"}}}, "up", 1<<20,
		func(d backend.Delta) error { deltas = append(deltas, d); return nil })
	if err != nil || g.SystemFingerprint != "fp_9" || len(deltas) == 0 || deltas[0].Fingerprint != "fp_9" {
		t.Fatalf("%v %+v %+v", err, g, deltas)
	}
	if string(deltas[0].Extra["service_tier"]) != `"flex"` || string(deltas[0].Extra["obfuscation"]) != `"k3"` || len(deltas[0].Extra) != 2 {
		t.Errorf("delta extra %s", deltas[0].Extra)
	}
	if string(g.Extra["service_tier"]) != `"flex"` || len(g.Extra) != 1 {
		t.Errorf("answer extra %s", g.Extra)
	}
}

// A stream whose body ends before [DONE] was cut short, even after a
// finish_reason: it is a backend failure, not an answer to keep (or cache).
func TestStreamWithoutDoneIsBroken(t *testing.T) {
	body := "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\"," +
		"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\n"
	_, err := readStream(strings.NewReader(body), &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Content: "q"}}}, "up", 1<<20,
		func(backend.Delta) error { return nil })
	if !errors.Is(err, fault.ErrUpstream) || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("err = %v", err)
	}
}

// An error a server sends mid-stream fails the call with the server's
// message, in each shape servers send it: a chunk's error member (an
// object or a string), an event of type error, llama.cpp's error line.
func TestStreamErrorKeepsTheServersMessage(t *testing.T) {
	first := "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\"," +
		"\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hi\"},\"finish_reason\":null}]}\n\n"
	for _, tail := range []string{
		"data: {\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}\n\n",
		"data: {\"error\":\"out of memory\",\"error_type\":\"generation\"}\n\n",
		"event: error\ndata: {\"message\":\"out of memory\"}\n\n",
		"error: {\"error\":{\"code\":500,\"message\":\"out of memory\",\"type\":\"server_error\"}}\n\n",
	} {
		_, err := readStream(strings.NewReader(first+tail+"data: [DONE]\n\n"), &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Content: "q"}}}, "up", 1<<20,
			func(backend.Delta) error { return nil })
		if !errors.Is(err, fault.ErrUpstream) || !strings.HasSuffix(err.Error(), ": up: out of memory") {
			t.Errorf("%q: err = %v", tail, err)
		}
	}
}
