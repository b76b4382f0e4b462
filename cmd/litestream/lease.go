package main

import (
	"fmt"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// applyLeaseSettings sets a replica's `lease:` keys.
func applyLeaseSettings(r *litestream.Replica, s *config.LeaseSettings) {
	if s == nil {
		return
	}
	if d := s.TTL; d != nil {
		r.LeaseTTL = d.D()
	}
	if w := s.Wait; w != nil {
		r.LeaseWait = *w
	}
}

// leaseWatcher ends the run when a replica with lease.wait false could not
// get or keep its lease: Err receives the first such error. Databases are
// added as they start, including those a directory watcher or the control
// socket adds later.
type leaseWatcher struct {
	errc chan error
	stop chan struct{}
}

func newLeaseWatcher() *leaseWatcher {
	return &leaseWatcher{errc: make(chan error, 1), stop: make(chan struct{})}
}

// watch follows db's replica; it does nothing for a nil watcher or a
// replica that waits for its lease.
func (w *leaseWatcher) watch(db *litestream.DB) {
	r := db.Replica
	if w == nil || r == nil || r.LeaseWait {
		return
	}
	go func() {
		select {
		case <-r.LeaseFailed():
			select {
			case w.errc <- fmt.Errorf("%s: %w", db.Path(), r.LeaseErr()):
			default:
			}
		case <-w.stop:
		}
	}()
}

// Err receives the first lease failure.
func (w *leaseWatcher) Err() <-chan error { return w.errc }

// Stop ends every watch.
func (w *leaseWatcher) Stop() { close(w.stop) }
