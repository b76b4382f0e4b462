package gs

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// EmulatorHostEnv names the variable that points the client at a GCS
// emulator (host:port, or a URL with scheme), as Google's libraries do.
const EmulatorHostEnv = "STORAGE_EMULATOR_HOST"

// Scope is the OAuth scope requested from Application Default
// Credentials: objects are listed, read, written and deleted.
const Scope = "https://www.googleapis.com/auth/devstorage.read_write"

// responseHeaderTimeout bounds the wait for an answer once a request
// has been sent in full.
const responseHeaderTimeout = 2 * time.Minute

// defaultBaseURL is GCS itself (a variable so a test can stand in for it).
var defaultBaseURL = "https://storage.googleapis.com"

// endpoint is where requests go and how they are authenticated.
type endpoint struct {
	base string // scheme://host, no trailing slash
	hc   *http.Client
}

// newEndpoint picks the emulator (plain HTTP, no authentication) when
// STORAGE_EMULATOR_HOST is set, and GCS with Application Default
// Credentials otherwise. ctx must outlive the client: the token source
// keeps it for refreshes.
func newEndpoint(ctx context.Context) (*endpoint, error) {
	if host := os.Getenv(EmulatorHostEnv); host != "" {
		base, err := emulatorBaseURL(host)
		if err != nil {
			return nil, err
		}
		return &endpoint{base: base, hc: &http.Client{Transport: newTransport()}}, nil
	}
	creds, err := google.FindDefaultCredentials(ctx, Scope)
	if err != nil {
		return nil, fmt.Errorf("application default credentials: %w", err)
	}
	base := defaultBaseURL
	if ud, err := creds.GetUniverseDomain(); err == nil && ud != "" && ud != "googleapis.com" {
		base = "https://storage." + ud
	}
	hc := &http.Client{Transport: &oauth2.Transport{Source: creds.TokenSource, Base: newTransport()}}
	return &endpoint{base: base, hc: hc}, nil
}

// emulatorBaseURL turns STORAGE_EMULATOR_HOST ("host:port" or
// "http://host:port") into a base URL; any path in it is ignored, as the
// API paths are absolute.
func emulatorBaseURL(host string) (string, error) {
	if !strings.Contains(host, "://") {
		host = "http://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%s=%q is not host:port or a URL", EmulatorHostEnv, host)
	}
	return u.Scheme + "://" + u.Host, nil
}

// newTransport is a private copy of the default transport, so that
// closing the client's idle connections touches no one else's.
func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = deleteParallelism
	// A connection that took the request and then went silent would
	// otherwise hold replication up forever; the timeout is a transport
	// error, so the request is retried.
	t.ResponseHeaderTimeout = responseHeaderTimeout
	return t
}

// objectURL is the JSON API URL of one object.
func (e *endpoint) objectURL(bucket, key string, q url.Values) string {
	return e.base + "/storage/v1/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(key) + query(q)
}

// listURL is the JSON API URL listing a bucket's objects.
func (e *endpoint) listURL(bucket string, q url.Values) string {
	return e.base + "/storage/v1/b/" + url.PathEscape(bucket) + "/o" + query(q)
}

// uploadURL is the JSON API media upload URL of a bucket.
func (e *endpoint) uploadURL(bucket string, q url.Values) string {
	return e.base + "/upload/storage/v1/b/" + url.PathEscape(bucket) + "/o" + query(q)
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
