package litestream_test

import (
	"context"
	"testing"
)

// TestDBReopen: a DB can be stopped and started again in one process (the
// control socket's stop/start), resuming without a full image or a gap.
func TestDBReopen(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.sync()
	for i := 0; i < 3; i++ {
		if err := h.db.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		insertRows(t, h, 5)
		if err := h.db.Open(); err != nil {
			t.Fatal(err)
		}
		insertRows(t, h, 5)
		h.sync()
	}
	if h.db.Replica.LastSyncAt().IsZero() {
		t.Fatal("LastSyncAt not recorded")
	}
	h.verifyAll()
}
