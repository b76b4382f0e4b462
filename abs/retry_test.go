package abs

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetriesAreBounded: Azurite never answers 429 or 5xx, so a local
// HTTP server on 127.0.0.1 plays an overloaded Azure. The client must try
// MaxRetries+1 times and then report Azure's code and message.
func TestRetriesAreBounded(t *testing.T) {
	for _, code := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				w.Header().Set("Content-Type", "application/xml")
				w.Header().Set("x-ms-error-code", "ServerBusy")
				w.WriteHeader(code)
				fmt.Fprint(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy.
RequestId:0000
Time:2024-01-01T00:00:00Z</Message></Error>`)
			}))
			t.Cleanup(srv.Close)
			c, err := NewReplicaClient(Config{
				Endpoint: srv.URL + "/acct", Container: "cont", Path: "db", SASToken: "sv=1&sig=SECRETSIG",
				MaxRetries: 2, RetryDelay: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err = c.LTXFiles(ctx, 0, 0, true)
			assertNames(t, err, "abs: list account=acct container=cont key=db/ltx/0/", "HTTP "+strconv.Itoa(code), "ServerBusy", "The server is busy.")
			assertNoSecret(t, err, "sv=1&sig=SECRETSIG")
			if n := requests.Load(); n != 3 {
				t.Errorf("%d requests, want 3 (MaxRetries+1)", n)
			}
		})
	}
}
