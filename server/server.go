// Package server holds what a running replication daemon offers besides
// replication: the control socket (HTTP over a Unix socket, the endpoints
// of Litestream v0.5's `info`, `list`, `sync`, `register`, `unregister`,
// `start` and `stop` commands) with its client, the Prometheus metrics
// listener and the heartbeat. It depends only on the root package; the
// command wires it to the config.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sqlitebackup/litestream"
)

// DefaultSocketPath is the control socket used when the config sets none.
const DefaultSocketPath = "/var/run/litestream.sock"

// DefaultTimeout bounds a sync, stop or unregister whose request names no
// timeout.
const DefaultTimeout = 30 * time.Second

// Control serves the control socket for a running Store.
type Control struct {
	Store   *litestream.Store
	Version string
	// NewDB builds, without opening, a database replicating to
	// replicaURL; /register is refused when it is nil.
	NewDB  func(path, replicaURL string) (*litestream.DB, error)
	PProf  bool // also serve /debug/pprof/*
	Logger *slog.Logger

	startedAt time.Time
	path      string
	sockInfo  os.FileInfo
	srv       *http.Server
	handlers  sync.WaitGroup

	mu      sync.Mutex
	closing bool
	states  map[*litestream.DB]*dbState
	regMu   sync.Mutex // serialises /register so a path is added once
}

// dbState is what the control socket adds to a DB: whether it was
// stopped, and a lock that keeps a sync from running into a stop.
type dbState struct {
	mu      sync.RWMutex // shared by sync; exclusive for start, stop, unregister
	stopped bool
	// removed is set by unregister: a request that looked the database
	// up before and waited for mu must not touch it any more.
	removed bool
}

// Listen creates the socket at path with mode perm (see ListenUnix) and
// serves it until Close.
func (s *Control) Listen(path string, perm os.FileMode) error {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	ln, err := ListenUnix(path, perm)
	if err != nil {
		return err
	}
	s.path = path
	s.sockInfo, _ = os.Lstat(path)
	s.startedAt = time.Now()
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Logger.Error("control socket stopped", "path", path, "error", err)
		}
	}()
	s.Logger.Info("control socket listening", "path", path, "permissions", fmt.Sprintf("%#o", perm))
	return nil
}

// Close stops accepting requests, waits for those in flight (bounded by
// ctx, then cancels them) and removes the socket.
func (s *Control) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close() // cancels the requests still running
	}
	s.handlers.Wait()
	removeSocket(s.path, s.sockInfo)
	return err
}

// Handler returns the control endpoints.
func (s *Control) Handler() http.Handler {
	if s.startedAt.IsZero() {
		s.startedAt = time.Now()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info", s.handleInfo)
	mux.HandleFunc("GET /list", s.handleList)
	mux.HandleFunc("GET /txid", s.handleTXID)
	mux.HandleFunc("POST /sync", s.handleSync)
	mux.HandleFunc("POST /register", s.handleRegister)
	mux.HandleFunc("POST /unregister", s.handleUnregister)
	mux.HandleFunc("POST /start", s.handleStart)
	mux.HandleFunc("POST /stop", s.handleStop)
	if s.PProf {
		registerPProf(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "unknown endpoint "+r.Method+" "+r.URL.Path, nil)
	})
	return s.track(mux)
}

// track counts running handlers so Close can wait for them.
func (s *Control) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.Add(1)
		defer s.handlers.Done()
		h.ServeHTTP(w, r)
	})
}

// ActiveDBs returns the store's databases that were not stopped through
// the socket.
func (s *Control) ActiveDBs() []*litestream.DB {
	var a []*litestream.DB
	for _, db := range s.Store.DBs() {
		if !s.state(db).isStopped() {
			a = append(a, db)
		}
	}
	return a
}

func (s *Control) state(db *litestream.DB) *dbState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = map[*litestream.DB]*dbState{}
	}
	st := s.states[db]
	if st == nil {
		st = &dbState{}
		s.states[db] = st
	}
	return st
}

func (s *Control) forget(db *litestream.DB) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, db)
}

func (st *dbState) isStopped() bool {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.stopped
}

// shuttingDown reports whether Close has begun: state changes are then
// refused, so nothing reopens a database the daemon is closing.
func (s *Control) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// lookup finds the database a request names, answering 404 itself.
func (s *Control) lookup(w http.ResponseWriter, path string) (*litestream.DB, *dbState, bool) {
	p, err := CleanPath(path)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid database path", err)
		return nil, nil, false
	}
	db := s.Store.DB(p)
	if db == nil {
		writeError(w, http.StatusNotFound, "database not found: "+p, nil)
		return nil, nil, false
	}
	return db, s.state(db), true
}

// CleanPath expands a leading "~" and makes path absolute, the way the
// config cleans database paths.
func CleanPath(path string) (string, error) {
	if path == "" {
		return "", errors.New("database path required")
	}
	if path == "~" || strings.HasPrefix(path, "~/") {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		path = filepath.Join(home, path[1:])
	}
	return filepath.Abs(path)
}

func requestTimeout(seconds int) time.Duration {
	if seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	return DefaultTimeout
}
