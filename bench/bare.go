package main

import (
	"bufio"
	"bytes"
	"os"

	"github.com/valyala/fasthttp"
)

// bareProxy is the least a reverse proxy written in Go on fasthttp does:
// the request's bytes go to upstream and the answer's come back, nothing
// decoded or checked, event streams flushed as they arrive. The bench runs
// it as a process of its own (this binary with -bare-proxy), pinned as
// every proxy is, so that the table shows what the runtime and the HTTP
// library cost before any of the gateway's own work.
func bareProxy(listen, upstream string) error {
	hc := &fasthttp.HostClient{Addr: upstream, MaxConns: 512, StreamResponseBody: true}
	return fasthttp.ListenAndServe(listen, func(ctx *fasthttp.RequestCtx) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		ctx.Request.CopyTo(req)
		if err := hc.Do(req, resp); err != nil {
			fasthttp.ReleaseResponse(resp)
			ctx.Error(err.Error(), fasthttp.StatusBadGateway)
			return
		}
		ctx.SetStatusCode(resp.StatusCode())
		ctx.Response.Header.SetContentTypeBytes(resp.Header.ContentType())
		if !bytes.HasPrefix(resp.Header.ContentType(), []byte("text/event-stream")) {
			ctx.SetBody(resp.Body())
			fasthttp.ReleaseResponse(resp)
			return
		}
		ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
			defer fasthttp.ReleaseResponse(resp)
			src, buf := resp.BodyStream(), make([]byte, 4096)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					if _, werr := w.Write(buf[:n]); werr != nil || w.Flush() != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	})
}

// startBare runs bareProxy in front of upstream.
func startBare(upstream string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := freePort()
	p, err := startProc("bare", addr, pinned(cpuProxy, self, "-bare-proxy", addr+","+upstream)...)
	if err != nil {
		return nil, err
	}
	return &target{name: bareName, url: "http://" + addr + "/v1/chat/completions", p: p}, nil
}

const bareName = "bare Go proxy (fasthttp)"
