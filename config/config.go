// Package config reads Litestream v0.5 configuration: the YAML file (with
// $VAR expansion) and replica URLs. It is the one parser shared by every
// command. Unlike upstream, unknown keys and invalid values are errors
// that name the key and its line.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sqlitebackup/litestream"
)

// DefaultPath is the config file used when neither -config nor
// $LITESTREAM_CONFIG is given.
const DefaultPath = "/etc/litestream.yml"

// Config is the whole configuration file.
type Config struct {
	DBs []*DBConfig `yaml:"dbs"`

	Addr     string         `yaml:"addr"`
	PProf    bool           `yaml:"pprof"` // serve /debug/pprof/* on addr and the socket; off by default, unlike upstream
	MCPAddr  string         `yaml:"mcp-addr"`
	Exec     string         `yaml:"exec"`
	Socket   SocketConfig   `yaml:"socket"`
	Logging  LoggingConfig  `yaml:"logging"`
	Levels   []LevelConfig  `yaml:"levels"`
	Snapshot SnapshotConfig `yaml:"snapshot"`

	Retention                RetentionConfig  `yaml:"retention"`
	L0Retention              *Duration        `yaml:"l0-retention"`
	L0RetentionCheckInterval *Duration        `yaml:"l0-retention-check-interval"`
	VerifyCompaction         bool             `yaml:"verify-compaction"`
	Validation               ValidationConfig `yaml:"validation"`
	Verify                   VerifyConfig     `yaml:"verify"`

	ShutdownSyncTimeout  *Duration `yaml:"shutdown-sync-timeout"`
	ShutdownSyncInterval *Duration `yaml:"shutdown-sync-interval"`
	HeartbeatURL         string    `yaml:"heartbeat-url"`
	HeartbeatInterval    *Duration `yaml:"heartbeat-interval"`

	// Top-level replica keys are defaults for every replica.
	ReplicaSettings `yaml:",inline"`
}

// DBConfig is one entry of `dbs:`.
type DBConfig struct {
	Path      string `yaml:"path"`
	Dir       string `yaml:"dir"`
	Pattern   string `yaml:"pattern"`
	Recursive bool   `yaml:"recursive"`
	Watch     bool   `yaml:"watch"`
	MetaPath  string `yaml:"meta-path"`
	MetaDir   string `yaml:"meta-dir"`

	MonitorInterval      *Duration       `yaml:"monitor-interval"`
	CheckpointInterval   *Duration       `yaml:"checkpoint-interval"`
	MinCheckpointPageN   *int            `yaml:"min-checkpoint-page-count"`
	TruncatePageN        *int            `yaml:"truncate-page-n"`
	BusyTimeout          *Duration       `yaml:"busy-timeout"`
	MaxSyncWALBytes      *int64          `yaml:"max-sync-wal-bytes"`
	RestoreIfDBNotExists bool            `yaml:"restore-if-db-not-exists"`
	Snapshot             *SnapshotConfig `yaml:"snapshot"`

	Replica  *ReplicaSettings   `yaml:"replica"`
	Replicas []*ReplicaSettings `yaml:"replicas"`
}

// SocketConfig is the control socket section.
type SocketConfig struct {
	Enabled     bool   `yaml:"enabled"`
	Path        string `yaml:"path"`
	Permissions uint32 `yaml:"permissions"`
}

// LoggingConfig is the logging section.
type LoggingConfig struct {
	Level  string `yaml:"level"`
	Type   string `yaml:"type"`
	Stderr bool   `yaml:"stderr"`
	Source bool   `yaml:"source"`
}

// LevelConfig is one compaction level.
type LevelConfig struct {
	Interval Duration `yaml:"interval"`
}

// SnapshotConfig is the snapshot section.
type SnapshotConfig struct {
	Interval  *Duration `yaml:"interval"`
	Retention *Duration `yaml:"retention"`
}

// RetentionConfig is the retention section.
type RetentionConfig struct {
	Enabled *bool `yaml:"enabled"`
}

// ValidationConfig is the validation section.
// VerifyConfig is the verify section: a periodic `litestream verify` of
// every replica from replicate (checksums of every file; no restore).
type VerifyConfig struct {
	Interval *Duration `yaml:"interval"`
}

type ValidationConfig struct {
	Interval *Duration `yaml:"interval"`
}

// ResolvePath returns the config path to use: the flag value, else
// $LITESTREAM_CONFIG, else DefaultPath; "~" is expanded.
func ResolvePath(flagValue string) (string, error) {
	p := flagValue
	if p == "" {
		p = os.Getenv("LITESTREAM_CONFIG")
	}
	if p == "" {
		p = DefaultPath
	}
	return expandHome(p)
}

// Load reads and validates the config file at path.
func Load(path string, expandEnv bool) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(b, expandEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse parses config text. With expandEnv, $VAR and ${VAR} are replaced
// by environment variables first (unset ones become empty, as upstream).
func Parse(b []byte, expandEnv bool) (*Config, error) {
	if expandEnv {
		b = []byte(os.Expand(string(b), func(k string) string {
			if k == "PID" {
				return strconv.Itoa(os.Getpid())
			}
			return os.Getenv(k)
		}))
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, cleanYAMLError(err)
	}
	if err := c.normalize(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cleanYAMLError turns yaml.v3's "field x not found in type config.T"
// into a message about the key.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	for _, typ := range []string{"config.Config", "config.DBConfig", "config.ReplicaSettings", "config.SocketConfig",
		"config.LoggingConfig", "config.LevelConfig", "config.SnapshotConfig", "config.RetentionConfig", "config.ValidationConfig", "config.AgeSettings", "config.LeaseSettings"} {
		msg = strings.ReplaceAll(msg, " not found in type "+typ, "")
	}
	msg = strings.ReplaceAll(msg, ": field ", ": unknown key ")
	return errors.New("invalid config: " + msg)
}

// normalize validates values, cleans database paths and applies the
// top-level replica defaults to every replica.
func (c *Config) normalize() error {
	if err := c.validateGlobal(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, db := range c.DBs {
		if db == nil {
			return fmt.Errorf("dbs[%d]: empty entry", i)
		}
		if err := db.normalize(); err != nil {
			return fmt.Errorf("dbs[%d]: %w", i, err)
		}
		key := db.Path + "\x00" + db.Dir
		if seen[key] {
			return fmt.Errorf("dbs[%d]: database %s is listed twice", i, db.Path+db.Dir)
		}
		seen[key] = true
		rs, err := db.ReplicaSettings()
		if err != nil {
			return fmt.Errorf("dbs[%d]: %w", i, err)
		}
		inheritReplicaSettings(rs, &c.ReplicaSettings)
		if err := rs.validate(); err != nil {
			return fmt.Errorf("dbs[%d].replica: %w", i, err)
		}
	}
	return nil
}

func (c *Config) validateGlobal() error {
	if _, err := ParseLogLevel(c.Logging.Level); err != nil {
		return fmt.Errorf("logging.level: %w", err)
	}
	switch strings.ToLower(c.Logging.Type) {
	case "", "text", "json", "pretty":
	default:
		return fmt.Errorf("logging.type: invalid value %q (expected text, json or pretty)", c.Logging.Type)
	}
	if len(c.Levels) > 8 {
		return fmt.Errorf("levels: at most 8 compaction levels are allowed (got %d)", len(c.Levels))
	}
	for i, l := range c.Levels {
		if l.Interval <= 0 {
			return fmt.Errorf("levels[%d].interval: must be greater than 0 (got %s)", i, l.Interval.D())
		}
	}
	checks := []struct {
		name    string
		d       *Duration
		zeroOK  bool
		atLeast time.Duration
	}{
		{"snapshot.interval", c.Snapshot.Interval, false, 0},
		{"snapshot.retention", c.Snapshot.Retention, false, 0},
		{"l0-retention", c.L0Retention, true, 0},
		{"l0-retention-check-interval", c.L0RetentionCheckInterval, false, 0},
		{"validation.interval", c.Validation.Interval, true, 0},
		{"verify.interval", c.Verify.Interval, true, 0},
		{"shutdown-sync-timeout", c.ShutdownSyncTimeout, true, 0},
		{"shutdown-sync-interval", c.ShutdownSyncInterval, false, 0},
		{"heartbeat-interval", c.HeartbeatInterval, false, time.Minute},
	}
	for _, ck := range checks {
		if err := checkDuration(ck.d, ck.zeroOK, ck.atLeast); err != nil {
			return fmt.Errorf("%s: %w", ck.name, err)
		}
	}
	if c.HeartbeatURL != "" && !strings.HasPrefix(c.HeartbeatURL, "http://") && !strings.HasPrefix(c.HeartbeatURL, "https://") {
		return fmt.Errorf("heartbeat-url: must start with http:// or https:// (got %q)", c.HeartbeatURL)
	}
	return nil
}

func checkDuration(d *Duration, zeroOK bool, atLeast time.Duration) error {
	if d == nil {
		return nil
	}
	switch v := d.D(); {
	case v < 0:
		return fmt.Errorf("must not be negative (got %s)", v)
	case v == 0 && !zeroOK:
		return fmt.Errorf("must be greater than 0 (got %s)", v)
	case v < atLeast && !(v == 0 && zeroOK):
		return fmt.Errorf("must be at least %s (got %s)", atLeast, v)
	}
	return nil
}

func (db *DBConfig) normalize() error {
	switch {
	case db.Path == "" && db.Dir == "":
		return errors.New("path or dir is required")
	case db.Path != "" && db.Dir != "":
		return errors.New("path and dir cannot both be set")
	case db.Dir != "" && db.Pattern == "":
		return errors.New("dir requires pattern")
	case db.MetaDir != "" && db.Dir == "":
		return errors.New("meta-dir requires dir")
	case db.MetaDir != "" && db.MetaPath != "":
		return errors.New("meta-dir and meta-path cannot both be set")
	case db.Watch && db.Dir == "":
		return errors.New("watch requires dir")
	}
	if db.Path != "" {
		p, err := CleanDBPath(db.Path)
		if err != nil {
			return fmt.Errorf("path: %w", err)
		}
		db.Path = p
	}
	for name, d := range map[string]*Duration{"monitor-interval": db.MonitorInterval, "checkpoint-interval": db.CheckpointInterval, "busy-timeout": db.BusyTimeout} {
		if err := checkDuration(d, true, 0); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if db.MinCheckpointPageN != nil && *db.MinCheckpointPageN <= 0 {
		return fmt.Errorf("min-checkpoint-page-count: must be greater than 0 (got %d)", *db.MinCheckpointPageN)
	}
	if db.TruncatePageN != nil && *db.TruncatePageN < 0 {
		return fmt.Errorf("truncate-page-n: must not be negative (got %d)", *db.TruncatePageN)
	}
	if db.MaxSyncWALBytes != nil && *db.MaxSyncWALBytes < 0 {
		return fmt.Errorf("max-sync-wal-bytes: must not be negative (got %d)", *db.MaxSyncWALBytes)
	}
	return nil
}

// DBConfigFor returns the config of a database registered at run time
// (the control socket's register): one replica URL, the top-level replica
// defaults applied and validated like an entry of the file.
func (c *Config) DBConfigFor(path, replicaURL string) (*DBConfig, error) {
	db := &DBConfig{Path: path, Replica: &ReplicaSettings{URL: replicaURL}}
	if err := db.normalize(); err != nil {
		return nil, err
	}
	inheritReplicaSettings(db.Replica, &c.ReplicaSettings)
	if err := db.Replica.validate(); err != nil {
		return nil, err
	}
	return db, nil
}

// ReplicaSettings returns the database's one replica.
func (db *DBConfig) ReplicaSettings() (*ReplicaSettings, error) {
	switch {
	case db.Replica != nil && len(db.Replicas) > 0:
		return nil, errors.New("replica and replicas cannot both be set")
	case len(db.Replicas) > 1:
		return nil, errors.New("multiple replicas on a single database are no longer supported (Litestream v0.5 allows one)")
	case len(db.Replicas) == 1 && db.Replicas[0] == nil:
		return nil, errors.New("replicas: empty entry")
	case len(db.Replicas) == 1:
		db.Replica, db.Replicas = db.Replicas[0], nil
	case db.Replica == nil:
		return nil, errors.New("a replica is required")
	}
	return db.Replica, nil
}

// CleanDBPath strips sqlite:// prefixes, expands "~" and makes the path
// absolute.
func CleanDBPath(p string) (string, error) {
	for _, prefix := range []string{"sqlite3://", "sqlite://"} {
		p = strings.TrimPrefix(p, prefix)
	}
	p, err := expandHome(p)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}

// notInherited lists replica keys that a top-level value does not fill
// in, as upstream: a replica's identity and per-replica tuning.
var notInherited = map[string]bool{
	"type": true, "url": true, "path": true, "name": true, "part-size": true,
	"concurrency": true, "host-key": true, "host-key-path": true,
	"webdav-url": true, "webdav-username": true, "webdav-password": true,
}

// inheritReplicaSettings copies every unset inheritable key of dst from
// the top-level defaults.
func inheritReplicaSettings(dst, defaults *ReplicaSettings) {
	dv, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(defaults).Elem()
	for i := 0; i < dv.NumField(); i++ {
		tag := strings.Split(dv.Type().Field(i).Tag.Get("yaml"), ",")[0]
		if notInherited[tag] {
			continue
		}
		if dv.Field(i).IsZero() && !sv.Field(i).IsZero() {
			dv.Field(i).Set(sv.Field(i))
		}
	}
}

func (s *ReplicaSettings) validate() error {
	if s.Age != nil && len(s.Age.Identities) == 0 && len(s.Age.Recipients) == 0 {
		return errors.New("age: at least one identity or recipient is required")
	}
	if s.URL != "" {
		if _, err := ParseReplicaURL(s.URL); err != nil {
			return err
		}
	}
	if s.Path != "" && IsURL(s.Path) {
		return fmt.Errorf("path must be a path, not a URL (use url: %s)", s.Path)
	}
	if err := checkDuration(s.SyncInterval, false, 0); err != nil {
		return fmt.Errorf("sync-interval: %w", err)
	}
	if s.MaxSyncLTXFiles != nil && *s.MaxSyncLTXFiles < 0 {
		return fmt.Errorf("max-sync-ltx-files: must not be negative (got %d)", *s.MaxSyncLTXFiles)
	}
	if s.Lease != nil {
		if err := checkDuration(s.Lease.TTL, false, litestream.MinLeaseTTL); err != nil {
			return fmt.Errorf("lease.ttl: %w", err)
		}
	}
	return nil
}

// ParseLogLevel maps upstream's level names to slog levels; "" is info.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "trace":
		return slog.LevelDebug - 4, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q (expected trace, debug, info, warn or error)", s)
}
