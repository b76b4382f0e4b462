package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/sqlitebackup/litestream"
)

func (s *Control) handleInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, InfoResponse{
		Version:       s.Version,
		PID:           os.Getpid(),
		UptimeSeconds: int64(time.Since(s.startedAt).Seconds()),
		StartedAt:     s.startedAt.UTC().Truncate(time.Second),
		DatabaseCount: len(s.Store.DBs()),
	})
}

func (s *Control) handleList(w http.ResponseWriter, r *http.Request) {
	resp := ListResponse{Databases: []DatabaseSummary{}}
	for _, db := range s.Store.DBs() {
		sum := DatabaseSummary{Path: db.Path(), Status: StateReplicating}
		if s.state(db).isStopped() {
			sum.Status = StateStopped
		}
		if db.Replica != nil {
			if t := db.Replica.LastSyncAt(); !t.IsZero() {
				t = t.UTC()
				sum.LastSyncAt = &t
			}
		}
		resp.Databases = append(resp.Databases, sum)
	}
	writeJSON(w, resp)
}

func (s *Control) handleTXID(w http.ResponseWriter, r *http.Request) {
	db, _, ok := s.lookup(w, r.URL.Query().Get("path"))
	if !ok {
		return
	}
	writeJSON(w, TXIDResponse{TXID: db.Pos()})
}

// handleSync writes pending WAL changes into a level-0 file now; with
// wait it returns only once the replica holds that TXID.
func (s *Control) handleSync(w http.ResponseWriter, r *http.Request) {
	var req SyncRequest
	if !decode(w, r, &req) {
		return
	}
	db, st, ok := s.lookup(w, req.Path)
	if !ok {
		return
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if refuseRemoved(w, db, st) {
		return
	}
	if st.stopped {
		writeError(w, http.StatusConflict, "database is stopped: "+db.Path(), nil)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(req.Timeout))
	defer cancel()
	before := db.Pos()
	var err error
	if req.Wait {
		err = db.SyncAndWait(ctx)
	} else {
		err = db.Sync(ctx)
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "sync "+db.Path()+" failed", err)
		return
	}
	resp := SyncResponse{Status: StatusNoChange, Path: db.Path(), TXID: db.Pos()}
	switch {
	case req.Wait:
		resp.Status = StatusSynced
	case resp.TXID != before:
		resp.Status = StatusSyncedLocal
	}
	if db.Replica != nil {
		resp.ReplicatedTXID = db.Replica.Pos()
	}
	writeJSON(w, resp)
}

func (s *Control) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req RegisterRequest
	if !decode(w, r, &req) {
		return
	}
	if s.refuseWhileClosing(w) {
		return
	}
	path, err := CleanPath(req.Path)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid database path", err)
		return
	}
	if req.ReplicaURL == "" {
		writeError(w, http.StatusBadRequest, "replica_url required", nil)
		return
	}
	if s.NewDB == nil {
		writeError(w, http.StatusNotImplemented, "this daemon does not accept registrations", nil)
		return
	}
	s.regMu.Lock()
	defer s.regMu.Unlock()
	if s.Store.DB(path) != nil {
		writeJSON(w, RegisterResponse{Status: StatusAlreadyRegistered, Path: path})
		return
	}
	db, err := s.NewDB(path, req.ReplicaURL)
	if err != nil {
		writeError(w, http.StatusBadRequest, "register "+path+" failed", err)
		return
	}
	if err := s.Store.AddDB(db); err != nil {
		writeError(w, http.StatusInternalServerError, "register "+path+" failed", err)
		return
	}
	s.Logger.Info("database registered", "db", path, "replica", db.Replica.Client.Type())
	writeJSON(w, RegisterResponse{Status: StatusRegistered, Path: path})
}

// handleUnregister closes a database with a final sync, bounded by the
// timeout, and removes it from the store.
func (s *Control) handleUnregister(w http.ResponseWriter, r *http.Request) {
	var req PathRequest
	if !decode(w, r, &req) {
		return
	}
	if s.refuseWhileClosing(w) {
		return
	}
	path, err := CleanPath(req.Path)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid database path", err)
		return
	}
	db := s.Store.DB(path)
	if db == nil {
		writeJSON(w, StateResponse{Status: StatusAlreadyUnregistered, Path: path})
		return
	}
	st := s.state(db)
	st.mu.Lock()
	defer st.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(req.Timeout))
	defer cancel()
	if refuseRemoved(w, db, st) {
		return // another unregister won the race
	}
	err = s.Store.RemoveDB(ctx, path)
	st.removed, st.stopped = true, true
	s.forget(db)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "unregister "+path+": final sync failed", err)
		return
	}
	s.Logger.Info("database unregistered", "db", path, "txid", db.Pos().String())
	writeJSON(w, StateResponse{Status: StatusUnregistered, Path: path, TXID: db.Pos()})
}

func (s *Control) handleStart(w http.ResponseWriter, r *http.Request) {
	var req PathRequest
	if !decode(w, r, &req) {
		return
	}
	if s.refuseWhileClosing(w) {
		return
	}
	db, st, ok := s.lookup(w, req.Path)
	if !ok {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if refuseRemoved(w, db, st) {
		return
	}
	if !st.stopped {
		writeJSON(w, StateResponse{Status: StatusAlreadyRunning, Path: db.Path(), TXID: db.Pos()})
		return
	}
	if err := db.Open(); err != nil {
		writeError(w, http.StatusInternalServerError, "start "+db.Path()+" failed", err)
		return
	}
	st.stopped = false
	s.Logger.Info("database started", "db", db.Path())
	writeJSON(w, StateResponse{Status: StatusStarted, Path: db.Path(), TXID: db.Pos()})
}

// handleStop closes a database with a final sync but keeps it in the
// store, so start can resume it.
func (s *Control) handleStop(w http.ResponseWriter, r *http.Request) {
	var req PathRequest
	if !decode(w, r, &req) {
		return
	}
	if s.refuseWhileClosing(w) {
		return
	}
	db, st, ok := s.lookup(w, req.Path)
	if !ok {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if refuseRemoved(w, db, st) {
		return
	}
	if st.stopped {
		writeJSON(w, StateResponse{Status: StatusAlreadyStopped, Path: db.Path(), TXID: db.Pos()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout(req.Timeout))
	defer cancel()
	err := db.Close(ctx)
	st.stopped = true // Close releases the database even when the final sync fails
	if err != nil {
		writeError(w, http.StatusInternalServerError, "stop "+db.Path()+": stopped, but the final sync failed", err)
		return
	}
	s.Logger.Info("database stopped", "db", db.Path(), "txid", db.Pos().String())
	writeJSON(w, StateResponse{Status: StatusStopped, Path: db.Path(), TXID: db.Pos()})
}

// refuseRemoved answers 404 for a database unregistered while the request
// waited for its state lock; the caller holds st.mu.
func refuseRemoved(w http.ResponseWriter, db *litestream.DB, st *dbState) bool {
	if st.removed {
		writeError(w, http.StatusNotFound, "database not found (unregistered): "+db.Path(), nil)
	}
	return st.removed
}

func (s *Control) refuseWhileClosing(w http.ResponseWriter) bool {
	if s.shuttingDown() {
		writeError(w, http.StatusServiceUnavailable, "daemon is shutting down", nil)
		return true
	}
	return false
}

// maxRequestBody bounds request bodies; real ones are a few hundred bytes.
const maxRequestBody = 1 << 20

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := io.LimitReader(r.Body, maxRequestBody)
	if err := json.NewDecoder(body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON request body", err)
		return false
	}
	// Reading to EOF lets net/http watch the connection, so a request
	// still running when Close cuts the connections sees its context end.
	_, _ = io.Copy(io.Discard, body)
	return true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string, err error) {
	resp := ErrorResponse{Error: msg}
	if err != nil {
		resp.Details = err.Error()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

// registerPProf adds Go's profiling endpoints.
func registerPProf(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
