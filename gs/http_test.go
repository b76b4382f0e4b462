package gs

// Tests of the HTTP layer against local servers on 127.0.0.1 that play
// GCS in ways fake-gcs-server cannot (failures, ignored ranges, OAuth).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

// localClient points a client at a local server through
// STORAGE_EMULATOR_HOST.
func localClient(t *testing.T, h http.Handler) *ReplicaClient {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Setenv(EmulatorHostEnv, strings.TrimPrefix(srv.URL, "http://"))
	c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db", MaxAttempts: 3, InitialBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// receivedUpload is a multipart upload as a server decoded it.
type receivedUpload struct {
	query         url.Values
	contentLength int64
	meta          objectMeta
	metaType      string
	data          []byte
	dataType      string
	err           error // the body did not decode as a complete multipart/related request
}

func decodeUpload(r *http.Request) receivedUpload {
	u := receivedUpload{query: r.URL.Query(), contentLength: r.ContentLength}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		u.err = fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
		return u
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if i != 2 {
				u.err = fmt.Errorf("%d parts", i)
			}
			return u
		} else if err != nil {
			u.err = err
			return u
		}
		b, err := io.ReadAll(p)
		if err != nil {
			u.err = err
			return u
		}
		switch i {
		case 0:
			u.metaType = p.Header.Get("Content-Type")
			u.err = json.Unmarshal(b, &u.meta)
		case 1:
			u.dataType, u.data = p.Header.Get("Content-Type"), b
		}
	}
}

func objectJSON(w http.ResponseWriter, name string, size, gen int64) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"name":%q,"size":"%d","generation":"%d"}`, name, size, gen)
}

func TestMultipartUploadEncoding(t *testing.T) {
	for _, tc := range []struct {
		name        string
		replayLimit int64
		wantLength  bool
	}{
		{"in memory, with length", 4 << 20, true},
		{"streamed, chunked", 64, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := replayLimit
			replayLimit = tc.replayLimit
			t.Cleanup(func() { replayLimit = old })
			var mu sync.Mutex // the race detector does not see the socket as a barrier
			var got receivedUpload
			c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/upload/storage/v1/b/bkt/o" {
					http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
					return
				}
				u := decodeUpload(r)
				mu.Lock()
				got = u
				mu.Unlock()
				objectJSON(w, u.query.Get("name"), int64(len(u.data)), 7)
			}))
			ts := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
			data := ltxBytes(t, 3, 4, ts)
			info, err := c.WriteLTXFile(context.Background(), 2, 3, 4, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if got.err != nil {
				t.Fatalf("request did not decode: %v", got.err)
			}
			key := "db/ltx/2/0000000000000003-0000000000000004.ltx"
			if q := got.query; q.Get("uploadType") != "multipart" || q.Get("name") != key || q.Has("ifGenerationMatch") {
				t.Errorf("query = %v", q)
			}
			if got.meta.Name != key || got.meta.ContentType != "application/octet-stream" || got.meta.Metadata[MetadataKeyTimestamp] != "2024-05-06T07:08:09.123Z" {
				t.Errorf("metadata part = %+v", got.meta)
			}
			if !strings.HasPrefix(got.metaType, "application/json") || got.dataType != "application/octet-stream" {
				t.Errorf("part types = %q, %q", got.metaType, got.dataType)
			}
			if !bytes.Equal(got.data, data) {
				t.Errorf("data part: %d bytes, want %d", len(got.data), len(data))
			}
			if tc.wantLength != (got.contentLength > 0) {
				t.Errorf("Content-Length = %d; want known: %v", got.contentLength, tc.wantLength)
			}
			if info.Size != int64(len(data)) || !info.CreatedAt.Equal(ts) {
				t.Errorf("info = %+v", info)
			}
		})
	}
}

// TestLeaseUploadPreconditions: lease writes carry ifGenerationMatch,
// 0 for "must not exist", and a 412 is not retried.
func TestLeaseUploadPreconditions(t *testing.T) {
	var mu sync.Mutex
	var conds []string
	c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := decodeUpload(r)
		mu.Lock()
		conds = append(conds, got.query.Get("ifGenerationMatch"))
		mu.Unlock()
		if got.query.Get("ifGenerationMatch") == "5" {
			w.WriteHeader(http.StatusPreconditionFailed)
			fmt.Fprint(w, `{"error":{"code":412,"message":"At least one of the pre-conditions you specified did not hold.","errors":[{"reason":"conditionNotMet"}]}}`)
			return
		}
		objectJSON(w, got.query.Get("name"), int64(len(got.data)), 9)
	}))
	ctx := context.Background()
	gen, err := c.putLeaseBody(ctx, []byte(`{}`), 0)
	if err != nil || gen != 9 {
		t.Fatalf("create: gen %d, err %v", gen, err)
	}
	_, err = c.putLeaseBody(ctx, []byte(`{}`), 5)
	if !isPreconditionFailed(err) {
		t.Fatalf("err = %v, want a 412", err)
	}
	assertNames(t, err, "write lease", "gs://bkt/db/lock.json", "HTTP 412", "conditionNotMet")
	if want := []string{"0", "5"}; strings.Join(conds, ",") != strings.Join(want, ",") {
		t.Fatalf("ifGenerationMatch sent = %v, want %v (no retry of the 412)", conds, want)
	}
}

// TestUploadRetries: a file kept in memory is sent again after a 503; a
// streamed one whose body was read is not, and the 503 is reported.
func TestUploadRetries(t *testing.T) {
	for _, tc := range []struct {
		name         string
		replayLimit  int64
		wantRequests int32
	}{
		{"in memory", 4 << 20, 2},
		{"streamed", 64, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := replayLimit
			replayLimit = tc.replayLimit
			t.Cleanup(func() { replayLimit = old })
			var requests atomic.Int32
			var mu sync.Mutex
			var stored []byte
			c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got := decodeUpload(r)
				if requests.Add(1) == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprint(w, `{"error":{"code":503,"message":"try again"}}`)
					return
				}
				mu.Lock()
				stored = got.data
				mu.Unlock()
				objectJSON(w, got.query.Get("name"), int64(len(got.data)), 1)
			}))
			data := ltxBytes(t, 1, 1, time.Now())
			_, err := c.WriteLTXFile(context.Background(), 0, 1, 1, bytes.NewReader(data))
			if n := requests.Load(); n != tc.wantRequests {
				t.Errorf("%d requests, want %d", n, tc.wantRequests)
			}
			if tc.wantRequests == 2 {
				mu.Lock()
				defer mu.Unlock()
				if err != nil || !bytes.Equal(stored, data) {
					t.Fatalf("err %v; stored %d bytes, want %d", err, len(stored), len(data))
				}
				return
			}
			assertNames(t, err, "gs: write gs://bkt/db/ltx/0/", "HTTP 503", "try again")
		})
	}
}

// failingReader returns data, then an error.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// TestUploadSourceFailure: when the LTX reader fails half-way through a
// streamed upload, the request ends without its closing boundary (so
// GCS stores nothing), is not retried, and the reader's error is
// reported.
func TestUploadSourceFailure(t *testing.T) {
	old := replayLimit
	replayLimit = 64
	t.Cleanup(func() { replayLimit = old })
	decoded := make(chan error, 10)
	c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := decodeUpload(r)
		decoded <- got.err
		if got.err != nil {
			http.Error(w, "truncated", http.StatusBadRequest)
			return
		}
		objectJSON(w, got.query.Get("name"), int64(len(got.data)), 1)
	}))
	data := ltxBytes(t, 1, 1, time.Now())
	diskErr := errors.New("disk on fire")
	_, err := c.WriteLTXFile(context.Background(), 0, 1, 1, &failingReader{r: bytes.NewReader(data), err: diskErr})
	if !errors.Is(err, diskErr) {
		t.Fatalf("err = %v, want the reader's error", err)
	}
	assertNames(t, err, "gs: write gs://bkt/db/ltx/0/", "disk on fire")
	// The server may have read the truncated request or not (the client
	// may abort before it is sent); either way it stored nothing.
	select {
	case derr := <-decoded:
		if derr == nil {
			t.Fatal("the server received a complete upload")
		}
		t.Logf("server: %v", derr)
	case <-time.After(2 * time.Second):
		t.Log("the server saw no request")
	}
	if len(decoded) > 0 {
		t.Fatalf("%d more requests: the failed upload was retried", len(decoded))
	}
}

// TestConnectionResetIsRetried: a connection closed without an answer
// is retried, up to MaxAttempts.
func TestConnectionResetIsRetried(t *testing.T) {
	var requests atomic.Int32
	c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"items":[{"name":"db/ltx/0/0000000000000001-0000000000000001.ltx","size":"10","metadata":{"litestream-timestamp":"2024-01-02T03:04:05Z"}}]}`)
	}))
	infos, err := listAll(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Size != 10 || !infos[0].CreatedAt.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("listing = %+v", infos)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func listAll(c *ReplicaClient, level int) ([]*ltx.FileInfo, error) {
	itr, err := c.LTXFiles(context.Background(), level, 0, true)
	if err != nil {
		return nil, err
	}
	defer itr.Close()
	var a []*ltx.FileInfo
	for itr.Next() {
		a = append(a, itr.Item())
	}
	return a, itr.Err()
}

// TestRangedReads: the Range header sent, a server that ignores it (200
// with the whole object), and a start past the end (416: empty).
func TestRangedReads(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	var ranges []string
	var mu sync.Mutex
	c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		if r.URL.Query().Get("alt") != "media" || !strings.HasSuffix(r.URL.EscapedPath(), "/o/db%2Fltx%2F0%2F0000000000000001-0000000000000001.ltx") {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
			return
		}
		if r.Header.Get("Range") == "bytes=100-" {
			http.Error(w, "InvalidRange", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		w.Write(data) // ignores Range
	}))
	for _, tc := range []struct {
		off, size int64
		want      string
		header    string
	}{
		{0, 0, string(data), ""},
		{5, 0, string(data[5:]), "bytes=5-"},
		{5, 3, "567", "bytes=5-7"},
		{100, 0, "", "bytes=100-"},
	} {
		rc, err := c.OpenLTXFile(context.Background(), 0, 1, 1, tc.off, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, rc); string(got) != tc.want {
			t.Errorf("offset %d size %d: got %q, want %q", tc.off, tc.size, got, tc.want)
		}
		mu.Lock()
		last := ranges[len(ranges)-1]
		mu.Unlock()
		if last != tc.header {
			t.Errorf("offset %d size %d: Range %q, want %q", tc.off, tc.size, last, tc.header)
		}
	}
}

// TestMissingObjectAndPlainTextErrors: a 404 to a read is os.ErrNotExist
// even with a text body (the emulator's downloads answer so), while a
// 404 to a listing (missing bucket) is not.
func TestMissingObjectAndPlainTextErrors(t *testing.T) {
	c := localClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "No such object:\nbkt/x", http.StatusNotFound)
	}))
	_, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open: err = %v, want os.ErrNotExist", err)
	}
	assertNames(t, err, "gs: open gs://bkt/db/ltx/0/0000000000000001-0000000000000001.ltx", "HTTP 404", "No such object: bkt/x")
	_, err = c.LTXFiles(context.Background(), 0, 0, true)
	if err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("list: err = %v, want an error that is not os.ErrNotExist", err)
	}
	if err := c.DeleteLTXFiles(context.Background(), []*ltx.FileInfo{{Level: 0, MinTXID: 1, MaxTXID: 1}}); err != nil {
		t.Fatalf("delete of a missing object: %v", err)
	}
}

func TestRetryClassification(t *testing.T) {
	for code, want := range map[int]bool{
		400: false, 401: false, 403: false, 404: false, 409: false, 412: false, 416: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true,
	} {
		if retryableStatus(code) != want {
			t.Errorf("retryableStatus(%d) = %v", code, !want)
		}
	}
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&url.Error{Op: "Get", URL: "u", Err: opErr}, true},
		{&url.Error{Op: "Post", URL: "u", Err: io.ErrUnexpectedEOF}, true},
		{&url.Error{Op: "Post", URL: "u", Err: io.EOF}, true},
		{&url.Error{Op: "Post", URL: "u", Err: syscall.ECONNRESET}, true},
		{&url.Error{Op: "Post", URL: "u", Err: fmt.Errorf("%w: %w", errBodySource, io.ErrUnexpectedEOF)}, false},
		{&url.Error{Op: "Get", URL: "u", Err: errors.New("oauth2: cannot fetch token: invalid_grant")}, false},
		{errors.New("something else"), false},
	} {
		if got := retryableTransportError(tc.err); got != tc.want {
			t.Errorf("retryableTransportError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestEmulatorBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:4443":                     "http://127.0.0.1:4443",
		"http://127.0.0.1:4443":              "http://127.0.0.1:4443",
		"https://gcs.local:8443/storage/v1/": "https://gcs.local:8443",
		"localhost:9023/":                    "http://localhost:9023",
	} {
		got, err := emulatorBaseURL(in)
		if err != nil || got != want {
			t.Errorf("emulatorBaseURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := emulatorBaseURL("http://"); err == nil {
		t.Error("no host: want an error")
	}
}

// TestApplicationDefaultCredentials: a service account key found through
// GOOGLE_APPLICATION_CREDENTIALS is exchanged for a token at its
// token_uri (a local server here), the token is sent as a bearer token,
// and it appears in no error.
func TestApplicationDefaultCredentials(t *testing.T) {
	const token = "ya29.secret-access-token"
	var tokenRequests atomic.Int32
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokenRequests.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, token)
			return
		}
		gotAuth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":{"code":403,"message":"svc@p.iam.gserviceaccount.com does not have storage.objects.list access"}}`)
	}))
	t.Cleanup(srv.Close)
	old := defaultBaseURL
	defaultBaseURL = srv.URL
	t.Cleanup(func() { defaultBaseURL = old })
	t.Setenv(EmulatorHostEnv, "")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", serviceAccountFile(t, srv.URL+"/token"))

	c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.LTXFiles(context.Background(), 0, 0, true)
	assertNames(t, err, "gs: list gs://bkt/db/ltx/0/", "HTTP 403", "storage.objects.list")
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("err = %v, want os.ErrPermission", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("error leaks the access token: %v", err)
	}
	if got, _ := gotAuth.Load().(string); got != "Bearer "+token {
		t.Fatalf("Authorization = %q, want the bearer token", got)
	}
	if n := tokenRequests.Load(); n != 1 {
		t.Fatalf("%d token requests, want 1", n)
	}
}

// serviceAccountFile writes a service account key with a fresh RSA key
// and the given token endpoint.
func serviceAccountFile(t *testing.T, tokenURI string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "p",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "svc@p.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURI,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
