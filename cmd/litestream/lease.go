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

// watchLeases returns a channel that receives the first error of a
// replica that could not get or keep its lease with lease.wait false
// (replicate then exits with that error), and a function that stops
// watching.
func watchLeases(dbs []*litestream.DB) (<-chan error, func()) {
	errc := make(chan error, 1)
	stop := make(chan struct{})
	for _, db := range dbs {
		r := db.Replica
		if r == nil || r.LeaseWait {
			continue
		}
		go func() {
			select {
			case <-r.LeaseFailed():
				select {
				case errc <- fmt.Errorf("%s: %w", db.Path(), r.LeaseErr()):
				default:
				}
			case <-stop:
			}
		}()
	}
	return errc, func() { close(stop) }
}
