package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/sqlitebackup/litestream"
)

// DefaultHeartbeatInterval is heartbeat-interval's default, as upstream.
const DefaultHeartbeatInterval = 5 * time.Minute

// heartbeatCheckEvery is how often health is evaluated, as upstream.
const heartbeatCheckEvery = 15 * time.Second

// heartbeatTimeout bounds one ping.
const heartbeatTimeout = 30 * time.Second

// Heartbeat pings URL (HTTP GET) at most once per Interval while every
// database is replicating: for dead-man's-switch services that alert when
// the pings stop.
//
// A database is healthy when its replica completed an upload pass in this
// process and either that pass was within Interval or the replica already
// holds every local TXID. The second case covers idle databases: with
// nothing to upload no pass runs, and nothing is at risk. With no
// databases at all no ping is sent.
type Heartbeat struct {
	URL      string
	Interval time.Duration
	DBs      func() []*litestream.DB // the databases that must be healthy
	Client   *http.Client
	Logger   *slog.Logger

	checkEvery time.Duration // tests shorten it

	mu          sync.Mutex
	lastAttempt time.Time
	failing     bool // the last ping failed (for the "recovered" line)
	withheld    bool // the last check found an unhealthy database
	cancel      context.CancelFunc
	done        chan struct{}
}

// Start runs the heartbeat until Stop.
func (h *Heartbeat) Start() {
	if h.Interval <= 0 {
		h.Interval = DefaultHeartbeatInterval
	}
	if h.checkEvery <= 0 {
		h.checkEvery = min(heartbeatCheckEvery, h.Interval)
	}
	if h.Client == nil {
		h.Client = &http.Client{Timeout: heartbeatTimeout}
	}
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	go h.run(ctx)
}

// Stop ends the heartbeat and waits for a ping in flight.
func (h *Heartbeat) Stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	<-h.done
}

func (h *Heartbeat) run(ctx context.Context) {
	defer close(h.done)
	ticker := time.NewTicker(h.checkEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			h.check(ctx, time.Now())
		}
	}
}

// check pings if an interval has passed since the last attempt and every
// database is healthy. The attempt is recorded before the request, so a
// failing endpoint is not hammered.
func (h *Heartbeat) check(ctx context.Context, now time.Time) {
	h.mu.Lock()
	due := h.lastAttempt.IsZero() || now.Sub(h.lastAttempt) >= h.Interval
	h.mu.Unlock()
	if !due {
		return
	}
	if reason := h.unhealthy(now); reason != "" {
		h.noteWithheld(reason)
		return
	}
	h.noteWithheld("")
	h.mu.Lock()
	h.lastAttempt = now
	h.mu.Unlock()
	err := h.ping(ctx)
	if ctx.Err() != nil {
		return
	}
	h.mu.Lock()
	wasFailing := h.failing
	h.failing = err != nil
	h.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		h.Logger.Warn("heartbeat failed", "error", err)
	case err == nil && wasFailing:
		h.Logger.Info("heartbeat recovered")
	case err == nil:
		h.Logger.Debug("heartbeat sent")
	}
}

// unhealthy returns why no ping may be sent now, or "".
func (h *Heartbeat) unhealthy(now time.Time) string {
	dbs := h.DBs()
	if len(dbs) == 0 {
		return "no databases"
	}
	for _, db := range dbs {
		if db.Replica == nil {
			return db.Path() + " has no replica"
		}
		last := db.Replica.LastSyncAt()
		switch {
		case last.IsZero():
			return db.Path() + " has not synced to its replica yet"
		case now.Sub(last) <= h.Interval:
		case db.Replica.Pos() >= db.Pos():
		default:
			return fmt.Sprintf("%s has not synced to its replica for %s", db.Path(), now.Sub(last).Round(time.Second))
		}
	}
	return ""
}

// noteWithheld logs once when pings stop and once when they resume.
func (h *Heartbeat) noteWithheld(reason string) {
	h.mu.Lock()
	was := h.withheld
	h.withheld = reason != ""
	h.mu.Unlock()
	switch {
	case reason != "" && !was:
		h.Logger.Warn("heartbeat withheld", "reason", reason)
	case reason == "" && was:
		h.Logger.Info("heartbeat resumed: every database is replicating")
	}
}

// ping sends GET URL; any 2xx is success. The URL is not logged or put in
// errors: heartbeat services embed their secret token in it.
func (h *Heartbeat) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return fmt.Errorf("heartbeat request: invalid heartbeat-url")
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("heartbeat request to %s: %w", req.URL.Host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("heartbeat to %s: HTTP %s", req.URL.Host, resp.Status)
	}
	return nil
}

// unwrapURLError drops net/http's *url.Error wrapper, whose message holds
// the whole URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
