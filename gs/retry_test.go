package gs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetriesAreBounded: fake-gcs-server never answers 429 or 5xx, so a
// local HTTP server on 127.0.0.1 plays an overloaded GCS. The client must
// try exactly MaxAttempts times and then report the server's message.
func TestRetriesAreBounded(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"error":{"code":%d,"message":"backend overloaded, try later","errors":[{"reason":"rateLimitExceeded","message":"backend overloaded, try later"}]}}`, code)
			}))
			t.Cleanup(srv.Close)
			t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))
			c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db", MaxAttempts: 3, InitialBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = c.LTXFiles(ctx, 0, 0, true)
			assertNames(t, err, "gs: list gs://bkt/db/ltx/0/", "HTTP "+strconv.Itoa(code), "backend overloaded, try later", "gave up after 3 attempts")
			if n := requests.Load(); n != 3 {
				t.Errorf("%d requests, want 3 (MaxAttempts)", n)
			}
		})
	}
}

// TestPermissionErrors: a 403 is not retried and is reported, on listing
// and on writing, with the bucket, the key and the server's message.
// fake-gcs-server has no IAM, so a local server plays GCS refusing access.
func TestPermissionErrors(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":{"code":403,"message":"svc@p.iam.gserviceaccount.com does not have storage.objects.list access","errors":[{"reason":"forbidden","message":"denied"}]}}`)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL, "http://"))
	c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db", MaxAttempts: 3, InitialBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	_, err = c.LTXFiles(ctx, 0, 0, true)
	assertNames(t, err, "gs: list gs://bkt/db/ltx/0/", "HTTP 403", "does not have storage.objects.list access")
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("list: err = %v, want os.ErrPermission", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("list: %d requests, want 1 (403 is not retryable)", n)
	}
	_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now())))
	assertNames(t, err, "gs: write gs://bkt/db/ltx/0/0000000000000001-0000000000000001.ltx", "HTTP 403")
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("write: err = %v, want os.ErrPermission", err)
	}
}
