package server

import (
	"time"

	"github.com/superfly/ltx"
)

// Request and response bodies of the control socket. Field names are
// upstream's, so scripts written for Litestream v0.5 keep working; TXIDs
// are 16-hex-digit strings everywhere (upstream mixes in decimals).
// Consumers must ignore fields they do not know: fields may be added.

// PathRequest is the body of /start, /stop and /unregister.
type PathRequest struct {
	Path    string `json:"path"`
	Timeout int    `json:"timeout,omitempty"` // seconds; 0 = DefaultTimeout
}

// SyncRequest is the body of /sync.
type SyncRequest struct {
	Path    string `json:"path"`
	Wait    bool   `json:"wait,omitempty"`    // return only once the replica holds the TXID
	Timeout int    `json:"timeout,omitempty"` // seconds; 0 = DefaultTimeout
}

// RegisterRequest is the body of /register.
type RegisterRequest struct {
	Path       string `json:"path"`
	ReplicaURL string `json:"replica_url"`
}

// Status values of the responses.
const (
	StatusSynced              = "synced"       // the replica holds the current TXID (wait)
	StatusSyncedLocal         = "synced_local" // a new level-0 file was written; upload follows
	StatusNoChange            = "no_change"
	StatusRegistered          = "registered"
	StatusAlreadyRegistered   = "already_registered"
	StatusUnregistered        = "unregistered"
	StatusAlreadyUnregistered = "already_unregistered"
	StatusStarted             = "started"
	StatusAlreadyRunning      = "already_running"
	StatusStopped             = "stopped"
	StatusAlreadyStopped      = "already_stopped"
)

// Database states in /list.
const (
	StateReplicating = "replicating"
	StateStopped     = "stopped"
)

// SyncResponse answers /sync.
type SyncResponse struct {
	Status         string   `json:"status"`
	Path           string   `json:"path"`
	TXID           ltx.TXID `json:"txid"`
	ReplicatedTXID ltx.TXID `json:"replicated_txid"`
}

// RegisterResponse answers /register.
type RegisterResponse struct {
	Status string `json:"status"`
	Path   string `json:"path"`
}

// StateResponse answers /start, /stop and /unregister.
type StateResponse struct {
	Status string   `json:"status"`
	Path   string   `json:"path"`
	TXID   ltx.TXID `json:"txid"`
}

// TXIDResponse answers /txid.
type TXIDResponse struct {
	TXID ltx.TXID `json:"txid"`
}

// ListResponse answers /list.
type ListResponse struct {
	Databases []DatabaseSummary `json:"databases"`
}

// DatabaseSummary is one database in /list.
type DatabaseSummary struct {
	Path       string     `json:"path"`
	Status     string     `json:"status"`
	LastSyncAt *time.Time `json:"last_sync_at,omitempty"` // last successful replica upload pass
}

// InfoResponse answers /info.
type InfoResponse struct {
	Version       string    `json:"version"`
	PID           int       `json:"pid"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	StartedAt     time.Time `json:"started_at"`
	DatabaseCount int       `json:"database_count"`
}

// ErrorResponse is the body of every non-200 answer.
type ErrorResponse struct {
	Error   string `json:"error"`
	Details string `json:"details,omitempty"`
}
