package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Client talks to a daemon's control socket.
type Client struct {
	SocketPath string
	// Timeout bounds each call. For sync, stop and unregister it is also
	// sent as the daemon's own deadline, and the client waits a little
	// longer so the daemon's explanation arrives instead of a bare timeout.
	Timeout time.Duration
}

// serverGrace is how much longer the client waits than the daemon.
const serverGrace = 2 * time.Second

// APIError is a non-200 answer from the daemon.
type APIError struct {
	StatusCode int
	Message    string
	Details    string
}

func (e *APIError) Error() string {
	if e.Details != "" {
		return e.Message + ": " + e.Details
	}
	return e.Message
}

// Info returns the daemon's version, PID, uptime and database count.
func (c *Client) Info(ctx context.Context) (*InfoResponse, error) {
	var resp InfoResponse
	return &resp, c.do(ctx, http.MethodGet, "/info", nil, &resp, false)
}

// List returns the daemon's databases.
func (c *Client) List(ctx context.Context) (*ListResponse, error) {
	var resp ListResponse
	return &resp, c.do(ctx, http.MethodGet, "/list", nil, &resp, false)
}

// TXID returns a database's current local TXID.
func (c *Client) TXID(ctx context.Context, path string) (*TXIDResponse, error) {
	var resp TXIDResponse
	return &resp, c.do(ctx, http.MethodGet, "/txid?path="+url.QueryEscape(path), nil, &resp, false)
}

// Sync syncs a database now; with req.Wait it returns once the replica
// holds the new TXID.
func (c *Client) Sync(ctx context.Context, req SyncRequest) (*SyncResponse, error) {
	req.Timeout = c.timeoutSeconds()
	var resp SyncResponse
	return &resp, c.do(ctx, http.MethodPost, "/sync", req, &resp, true)
}

// Register adds a database to the running daemon.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (*RegisterResponse, error) {
	var resp RegisterResponse
	return &resp, c.do(ctx, http.MethodPost, "/register", req, &resp, false)
}

// Unregister removes a database after a final sync.
func (c *Client) Unregister(ctx context.Context, path string) (*StateResponse, error) {
	return c.state(ctx, "/unregister", path)
}

// Start resumes a stopped database.
func (c *Client) Start(ctx context.Context, path string) (*StateResponse, error) {
	return c.state(ctx, "/start", path)
}

// Stop stops replicating a database after a final sync; it stays
// registered.
func (c *Client) Stop(ctx context.Context, path string) (*StateResponse, error) {
	return c.state(ctx, "/stop", path)
}

func (c *Client) state(ctx context.Context, endpoint, path string) (*StateResponse, error) {
	var resp StateResponse
	return &resp, c.do(ctx, http.MethodPost, endpoint, PathRequest{Path: path, Timeout: c.timeoutSeconds()}, &resp, true)
}

func (c *Client) timeoutSeconds() int {
	if c.Timeout <= 0 {
		return 0
	}
	return int(max(c.Timeout.Round(time.Second), time.Second) / time.Second)
}

// do sends one request over the socket and decodes the answer into out.
func (c *Client) do(ctx context.Context, method, endpoint string, body, out any, serverTimed bool) error {
	if c.Timeout > 0 {
		d := c.Timeout
		if serverTimed {
			d += serverGrace
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://litestream"+endpoint, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return c.connError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read response from control socket %s: %w", c.SocketPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("HTTP %s: %s", resp.Status, bytes.TrimSpace(b))
		}
		return &APIError{StatusCode: resp.StatusCode, Message: e.Error, Details: e.Details}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("invalid response from control socket %s: %w", c.SocketPath, err)
	}
	return nil
}

func (c *Client) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.SocketPath)
		},
		DisableKeepAlives: true,
	}}
}

func (c *Client) connError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("control socket %s: no answer within %s", c.SocketPath, c.Timeout)
	}
	return fmt.Errorf("cannot reach the control socket %s (is `litestream replicate` running with socket.enabled: true?): %w", c.SocketPath, err)
}
