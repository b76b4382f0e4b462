package litestream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Default Store settings, as Litestream v0.5.
var DefaultCompactionIntervals = []time.Duration{30 * time.Second, 5 * time.Minute, time.Hour}

const (
	DefaultSnapshotInterval         = 24 * time.Hour
	DefaultSnapshotRetention        = 24 * time.Hour
	DefaultL0Retention              = 5 * time.Minute
	DefaultL0RetentionCheckInterval = 15 * time.Second
)

// Store runs a set of DBs and the background work on their replicas:
// compaction of each level at wall-clock multiples of its interval,
// snapshots, retention and validation. Scheduled runs with nothing new to
// do make no replica requests.
type Store struct {
	// CompactionIntervals configures levels 1..n (n <= 8).
	CompactionIntervals      []time.Duration
	SnapshotInterval         time.Duration
	SnapshotRetention        time.Duration
	L0Retention              time.Duration // 0 disables level-0 retention
	L0RetentionCheckInterval time.Duration
	RetentionEnabled         bool          // false: never delete in replicas
	ValidationInterval       time.Duration // 0 disables periodic validation
	VerifyInterval           time.Duration // 0 disables periodic verification
	Logger                   *slog.Logger

	mu     sync.Mutex
	dbs    []*DB
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewStore returns a store for dbs with Litestream's default schedule.
func NewStore(dbs []*DB) *Store {
	return &Store{
		CompactionIntervals:      DefaultCompactionIntervals,
		SnapshotInterval:         DefaultSnapshotInterval,
		SnapshotRetention:        DefaultSnapshotRetention,
		L0Retention:              DefaultL0Retention,
		L0RetentionCheckInterval: DefaultL0RetentionCheckInterval,
		RetentionEnabled:         true,
		Logger:                   slog.Default(),
		dbs:                      dbs,
	}
}

// DBs returns the store's databases.
func (s *Store) DBs() []*DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*DB(nil), s.dbs...)
}

// DB returns the store's database at path, or nil.
func (s *Store) DB(path string) *DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, db := range s.dbs {
		if db.Path() == path {
			return db
		}
	}
	return nil
}

// Open opens every DB and starts the schedulers.
func (s *Store) Open() error {
	if len(s.CompactionIntervals) > MaxCompactionLevel {
		return fmt.Errorf("at most %d compaction levels (got %d)", MaxCompactionLevel, len(s.CompactionIntervals))
	}
	for _, db := range s.DBs() {
		if err := db.Open(); err != nil {
			return fmt.Errorf("open %s: %w", db.Path(), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for i, interval := range s.CompactionIntervals {
		level := i + 1
		s.every(ctx, interval, func(ctx context.Context) { s.compactAll(ctx, level) })
	}
	if s.SnapshotInterval > 0 {
		s.every(ctx, s.SnapshotInterval, s.snapshotAll)
	}
	if s.L0Retention > 0 && s.L0RetentionCheckInterval > 0 && len(s.CompactionIntervals) > 0 {
		s.every(ctx, s.L0RetentionCheckInterval, s.l0RetentionAll)
	}
	if s.ValidationInterval > 0 {
		s.every(ctx, s.ValidationInterval, s.validateAll)
	}
	if s.VerifyInterval > 0 {
		s.every(ctx, s.VerifyInterval, s.verifyAll)
	}
	return nil
}

// AddDB opens a DB and adds it to a running store.
func (s *Store) AddDB(db *DB) error {
	if s.DB(db.Path()) != nil {
		return fmt.Errorf("database %s is already in the store", db.Path())
	}
	if err := db.Open(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dbs = append(s.dbs, db)
	return nil
}

// RemoveDB closes a DB (with a final sync) and removes it from the store.
func (s *Store) RemoveDB(ctx context.Context, path string) error {
	s.mu.Lock()
	var db *DB
	for i, d := range s.dbs {
		if d.Path() == path {
			db = d
			s.dbs = append(s.dbs[:i:i], s.dbs[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if db == nil {
		return fmt.Errorf("database %s is not in the store", path)
	}
	return db.Close(ctx)
}

// Close stops the schedulers and closes every DB with a final sync.
func (s *Store) Close(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	var errs []error
	for _, db := range s.DBs() {
		if err := db.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", db.Path(), err))
		}
	}
	return errors.Join(errs...)
}

// every runs fn at wall-clock multiples of interval until ctx ends.
func (s *Store) every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			now := time.Now()
			timer := time.NewTimer(now.Truncate(interval).Add(interval).Sub(now))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			fn(ctx)
		}
	}()
}

func (s *Store) replicas() []*Replica {
	var a []*Replica
	for _, db := range s.DBs() {
		if db.Replica != nil {
			a = append(a, db.Replica)
		}
	}
	return a
}

func (s *Store) compactAll(ctx context.Context, level int) {
	for _, r := range s.replicas() {
		files, err := r.Compact(ctx, level)
		if err != nil && ctx.Err() == nil {
			logFailure(r, "compaction failed", "level", level, "error", err)
			continue
		}
		for _, f := range files {
			r.logger().Debug("compacted", "level", level, "min_txid", f.MinTXID.String(), "max_txid", f.MaxTXID.String(), "size", f.Size)
		}
	}
}

func (s *Store) snapshotAll(ctx context.Context) {
	for _, r := range s.replicas() {
		if err := s.SnapshotAndRetain(ctx, r); err != nil && ctx.Err() == nil {
			logFailure(r, "snapshot failed", "error", err)
		}
	}
}

// SnapshotAndRetain writes a snapshot if the replica advanced and then
// applies snapshot retention.
func (s *Store) SnapshotAndRetain(ctx context.Context, r *Replica) error {
	info, err := r.Snapshot(ctx)
	if err != nil {
		return err
	}
	if info != nil {
		r.logger().Info("snapshot written", "max_txid", info.MaxTXID.String(), "size", info.Size)
	}
	return r.EnforceRetention(ctx, time.Now(), RetentionPolicy{SnapshotRetention: s.SnapshotRetention, DeleteRemote: s.RetentionEnabled})
}

// EnforceAllRetention applies snapshot and level-0 retention to r now.
func (s *Store) EnforceAllRetention(ctx context.Context, r *Replica) error {
	now := time.Now()
	if err := r.EnforceRetention(ctx, now, RetentionPolicy{SnapshotRetention: s.SnapshotRetention, DeleteRemote: s.RetentionEnabled}); err != nil {
		return err
	}
	if s.L0Retention > 0 {
		return r.EnforceL0Retention(ctx, now, s.L0Retention, s.RetentionEnabled)
	}
	return nil
}

func (s *Store) l0RetentionAll(ctx context.Context) {
	for _, r := range s.replicas() {
		if err := r.EnforceL0Retention(ctx, time.Now(), s.L0Retention, s.RetentionEnabled); err != nil && ctx.Err() == nil {
			logFailure(r, "level-0 retention failed", "error", err)
		}
	}
}

func (s *Store) validateAll(ctx context.Context) {
	for _, r := range s.replicas() {
		problems, err := ValidateLevels(ctx, r.Client)
		if err != nil && ctx.Err() == nil {
			r.logger().Error("validation failed", "error", err)
			continue
		}
		validationProblemsGauge.WithLabelValues(r.db.path).Set(float64(len(problems)))
		compactionVerifyErrorCounter.WithLabelValues(r.db.path).Add(float64(len(problems)))
		for _, p := range problems {
			r.logger().Warn("replica validation", "problem", p)
		}
	}
}

// verifyAll checks every replica's files and chain (Verify without the
// restore) and records the result.
func (s *Store) verifyAll(ctx context.Context) {
	for _, r := range s.replicas() {
		rep, err := Verify(ctx, r.Client, VerifyOptions{})
		if err != nil {
			if ctx.Err() == nil {
				r.logger().Error("verify failed to run", "error", err)
			}
			continue
		}
		verifyProblemsGauge.WithLabelValues(r.db.path).Set(float64(len(rep.Problems)))
		verifyTimestampGauge.WithLabelValues(r.db.path).SetToCurrentTime()
		for _, p := range rep.Problems {
			r.logger().Warn("replica verify", "problem", p)
		}
	}
}

// logFailure logs a scheduled run's error; a standby waiting for another
// process's lease is expected, not an error, so it logs at debug level.
func logFailure(r *Replica, msg string, args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, ErrLeaseHeld) {
			r.logger().Debug(msg+" (replica lease held elsewhere)", args...)
			return
		}
	}
	r.logger().Error(msg, args...)
}
