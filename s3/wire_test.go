package s3

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// wireProxy sits on 127.0.0.1 in front of a real S3 server. It records
// every request's headers and can answer the next requests with an error
// status instead of forwarding them, to exercise retries. SigV4 still
// verifies because the Host header the client signed is passed through.
type wireProxy struct {
	srv *httptest.Server

	mu     sync.Mutex
	inject []int
	seen   []seenRequest

	// respond, when set, may answer a request itself (returns true).
	respond func(w http.ResponseWriter, r *http.Request) bool
}

type seenRequest struct {
	method, path, query string
	header              http.Header
	injected            int
}

func newWireProxy(t *testing.T, target string) *wireProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host
	}}
	p := &wireProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		code := 0
		if len(p.inject) > 0 {
			code, p.inject = p.inject[0], p.inject[1:]
		}
		p.seen = append(p.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), code})
		respond := p.respond
		p.mu.Unlock()
		if respond != nil && respond(w, r) {
			return
		}
		if code == 0 {
			rp.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		errCode := map[int]string{503: "SlowDown", 429: "TooManyRequests", 500: "InternalError", 408: "RequestTimeout"}[code]
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(code)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test proxy</Message></Error>`, errCode)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *wireProxy) setRespond(fn func(w http.ResponseWriter, r *http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.respond = fn
}

func (p *wireProxy) injectNext(codes ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inject = append(p.inject, codes...)
}

// requests returns the recorded requests and forgets them.
func (p *wireProxy) requests() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.seen
	p.seen = nil
	return a
}

// proxiedClient is a test client whose requests go through a wireProxy.
func proxiedClient(t *testing.T, srv testServer, mutate func(*Config)) (*ReplicaClient, *wireProxy) {
	p := newWireProxy(t, srv.endpoint)
	c := newTestClient(t, srv, func(cfg *Config) {
		cfg.Endpoint = p.srv.URL
		if mutate != nil {
			mutate(cfg)
		}
	})
	return c, p
}

// Throttling and server errors are retried with backoff, up to
// MaxAttempts; the final error says what the server answered.
func TestRetries(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c, p := proxiedClient(t, srv, func(cfg *Config) { cfg.MaxAttempts = 5 })
		data := replicatest.NewLTXFile(1, 1, testTime, 2)

		p.injectNext(503, 429, 500, 408)
		write(t, ctx, c, 0, data)
		if reqs := p.requests(); len(reqs) != 5 || reqs[4].injected != 0 {
			t.Fatalf("%d requests for one PutObject with 4 injected errors, want 5", len(reqs))
		}
		p.injectNext(503)
		if got := readAll(t, ctx, c, 0, 1, 1, 0, 0); !bytes.Equal(got, data) {
			t.Fatal("read back differs")
		}
		p.injectNext(503)
		if infos, err := litestream.LTXFileInfos(ctx, c, 0, 0, true); err != nil || len(infos) != 1 {
			t.Fatalf("list: %v %v", infos, err)
		}
		p.injectNext(503)
		if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}}); err != nil {
			t.Fatal(err)
		}

		p.injectNext(503, 503, 503, 503, 503)
		start := time.Now()
		_, err := c.WriteLTXFile(ctx, 0, 2, 2, bytes.NewReader(replicatest.NewLTXFile(2, 2, testTime, 1)))
		checkOpError(t, err, c.Bucket(), "PutObject", c.key(0, 2, 2), "SlowDown", "injected by the test proxy",
			"StatusCode: 503", "exceeded maximum number of attempts, 5")
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("5 attempts with a 100ms backoff cap took %s", took)
		}
	})
}

// What goes over the wire for a custom endpoint: signed payloads, no
// aws-chunked bodies or trailing checksums, Content-MD5 on DeleteObjects,
// and the switches that change these.
func TestWireHeaders(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		small := replicatest.NewLTXFile(1, 1, testTime, 1)
		large := replicatest.NewLTXFile(2, 2, testTime, (MinPartSize+MinPartSize/4)/replicatest.PageSize)
		for _, tc := range []struct {
			name           string
			mutate         func(*Config)
			unsigned, md5  bool
			provider       provider
			tigris, gcsFix bool
		}{
			{name: "defaults", md5: true},
			{name: "unsigned payload", mutate: func(c *Config) { c.SignPayload = ptr(false) }, unsigned: true, md5: true},
			{name: "no Content-MD5", mutate: func(c *Config) { c.RequireContentMD5 = ptr(false) }},
			{name: "tigris", provider: providerTigris, tigris: true, md5: true},
			{name: "gcs", provider: providerGCS, gcsFix: true, md5: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := testCtx(t)
				c, p := proxiedClient(t, srv, tc.mutate)
				if tc.provider != providerGeneric {
					c.cfg.provider = tc.provider
					c.cfg.contentMD5 = tc.md5
					c.rebuildAPI()
				}
				write(t, ctx, c, 0, small)
				write(t, ctx, c, 0, large)
				if got := readAll(t, ctx, c, 0, 2, 2, 0, 0); !bytes.Equal(got, large) {
					t.Fatal("large file read back differs")
				}
				if err := c.DeleteLTXFiles(ctx, []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}}); err != nil {
					t.Fatal(err)
				}
				checkWire(t, p.requests(), tc.unsigned, tc.md5, tc.tigris, tc.gcsFix)
			})
		}
	})
}

func checkWire(t *testing.T, reqs []seenRequest, unsigned, md5, tigris, gcsFix bool) {
	t.Helper()
	var puts, deletes int
	for _, r := range reqs {
		h := r.header
		what := r.method + " " + r.path + "?" + r.query
		if enc := h.Get("Content-Encoding"); strings.Contains(enc, "aws-chunked") || h.Get("X-Amz-Trailer") != "" {
			t.Errorf("%s: aws-chunked body (Content-Encoding %q, X-Amz-Trailer %q)", what, enc, h.Get("X-Amz-Trailer"))
		}
		if !strings.Contains(h.Get("User-Agent"), "litestream") {
			t.Errorf("%s: User-Agent %q", what, h.Get("User-Agent"))
		}
		if got := h.Get("X-Tigris-Consistent") == "true"; got != tigris {
			t.Errorf("%s: X-Tigris-Consistent %q", what, h.Get("X-Tigris-Consistent"))
		}
		signsAcceptEncoding := strings.Contains(h.Get("Authorization"), "accept-encoding")
		if gcsFix && (signsAcceptEncoding || h.Get("Accept-Encoding") == "") {
			t.Errorf("%s: Accept-Encoding %q signed=%v", what, h.Get("Accept-Encoding"), signsAcceptEncoding)
		}
		if r.method == http.MethodPut {
			puts++
			sha := h.Get("X-Amz-Content-Sha256")
			if unsigned != (sha == "UNSIGNED-PAYLOAD") || (!unsigned && len(sha) != 64) {
				t.Errorf("%s: X-Amz-Content-Sha256 %q (unsigned payload wanted: %v)", what, sha, unsigned)
			}
			if h.Get("Content-Length") == "" {
				t.Errorf("%s: no Content-Length", what)
			}
		}
		if r.method == http.MethodPost && strings.HasPrefix(r.query, "delete") {
			deletes++
			if got := h.Get("Content-MD5") != ""; got != md5 {
				t.Errorf("%s: Content-MD5 %q, wanted: %v", what, h.Get("Content-MD5"), md5)
			}
		}
	}
	if puts < 3 || deletes != 1 {
		t.Fatalf("saw %d PUTs and %d DeleteObjects in %d requests", puts, deletes, len(reqs))
	}
}

// Without a region, the client asks HeadBucket for x-amz-bucket-region on
// first use; S3 sends that header even with an error status.
func TestRegionLookup(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c, p := proxiedClient(t, srv, nil)
		c.api = nil // as when neither region nor endpoint is configured
		api, err := c.client(ctx)
		if err != nil {
			t.Fatalf("region lookup against %s: %v", srv.name, err)
		}
		if got := api.Options().Region; got != DefaultRegion {
			t.Fatalf("region %q", got)
		}
		if reqs := p.requests(); len(reqs) != 1 || reqs[0].method != http.MethodHead {
			t.Fatalf("requests %v", reqs)
		}

		// A HEAD answered 301 with the header, as AWS does for a bucket
		// in another region.
		c.api = nil
		p.setRespond(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodHead {
				return false
			}
			w.Header().Set("X-Amz-Bucket-Region", "eu-test-1")
			w.WriteHeader(http.StatusMovedPermanently)
			return true
		})
		if api, err = c.client(ctx); err != nil || api.Options().Region != "eu-test-1" {
			t.Fatalf("region %v, %v", api, err)
		}
		p.setRespond(nil)
		c.api = c.newAPI(DefaultRegion) // the servers' region, for cleanup
	})
}

// SSE-C headers go with every request that touches object data; the key
// itself never shows up in an error.
func TestSSECustomerHeaders(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes
		c, p := proxiedClient(t, srv, func(cfg *Config) { cfg.SSECustomerKey = key })
		_, werr := c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(replicatest.NewLTXFile(1, 1, testTime, 1)))
		_, rerr := c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
		t.Logf("%s with SSE-C over http: write %v; read %v", srv.name, werr, rerr)
		for _, err := range []error{werr, rerr} {
			if err != nil && strings.Contains(err.Error(), key) {
				t.Fatalf("error contains the key: %v", err)
			}
		}
		reqs := p.requests()
		if len(reqs) < 2 {
			t.Fatalf("%d requests", len(reqs))
		}
		for _, r := range reqs[:2] {
			h := r.header
			if h.Get("X-Amz-Server-Side-Encryption-Customer-Algorithm") != "AES256" ||
				h.Get("X-Amz-Server-Side-Encryption-Customer-Key") != key ||
				h.Get("X-Amz-Server-Side-Encryption-Customer-Key-Md5") != "hRasmdxgYDKV3nvbahU1MA==" {
				t.Fatalf("%s %s: SSE-C headers missing: %v", r.method, r.path, h)
			}
		}
	})
}
