package litestream_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sqlitebackup/litestream"
)

// workload applies random application activity: inserts, updates,
// deletes, schema changes, large blobs, VACUUM, long transactions and
// bursts of small ones. Each step is one or more commits.
type workload struct {
	t    *testing.T
	h    *harness
	rng  *rand.Rand
	next int
}

func (w *workload) step() {
	app := w.h.app
	switch w.rng.IntN(9) {
	case 0: // one transaction with many inserts
		tx, err := app.Begin()
		if err != nil {
			w.t.Fatal(err)
		}
		n := 50 + w.rng.IntN(500)
		for i := 0; i < n; i++ {
			if _, err := tx.Exec("INSERT INTO items (name, qty, data) VALUES (?, ?, ?)", fmt.Sprintf("item-%d", w.next), w.rng.IntN(1000), randBytes(w.rng, w.rng.IntN(300))); err != nil {
				w.t.Fatal(err)
			}
			w.next++
		}
		if err := tx.Commit(); err != nil {
			w.t.Fatal(err)
		}
	case 1: // many small transactions
		for i := 0; i < 20; i++ {
			mustExec(w.t, app, "INSERT INTO items (name, qty) VALUES (?, ?)", fmt.Sprintf("small-%d", w.next), i)
			w.next++
		}
	case 2:
		mustExec(w.t, app, "UPDATE items SET qty = qty + 1, name = name || 'u' WHERE id % ? = 0", 2+w.rng.IntN(5))
	case 3:
		mustExec(w.t, app, "DELETE FROM items WHERE id % ? = 0", 3+w.rng.IntN(7))
	case 4: // large blob spanning many overflow pages
		mustExec(w.t, app, "INSERT INTO blobs (data) VALUES (?)", randBytes(w.rng, 50_000+w.rng.IntN(400_000)))
	case 5:
		mustExec(w.t, app, "DELETE FROM blobs WHERE id IN (SELECT id FROM blobs ORDER BY random() LIMIT 2)")
	case 6: // schema change
		name := fmt.Sprintf("extra_%d", w.next)
		w.next++
		mustExec(w.t, app, fmt.Sprintf("CREATE TABLE %s (k TEXT PRIMARY KEY, v) WITHOUT ROWID", name))
		mustExec(w.t, app, fmt.Sprintf("INSERT INTO %s VALUES ('a', 1), ('b', 2.5), ('c', x'00ff')", name))
		mustExec(w.t, app, fmt.Sprintf("CREATE INDEX IF NOT EXISTS items_qty_%d ON items (qty)", w.rng.IntN(3)))
	case 7: // shrink the file
		mustExec(w.t, app, "DELETE FROM blobs")
		mustExec(w.t, app, "VACUUM")
	case 8: // a transaction rolled back: must never appear
		tx, err := app.Begin()
		if err != nil {
			w.t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO items (name) SELECT 'ghost' FROM items LIMIT 100"); err != nil {
			w.t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			w.t.Fatal(err)
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func runWorkload(t *testing.T, pageSize, steps int, seed uint64) {
	h := newHarness(t, pageSize, func(db *litestream.DB) {
		db.MinCheckpointPageN = 64 // checkpoint and restart the WAL often
	})
	mustExec(t, h.app, "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, data BLOB)")
	mustExec(t, h.app, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)")
	h.sync()
	w := &workload{t: t, h: h, rng: rand.New(rand.NewPCG(seed, uint64(pageSize)))}
	for i := 0; i < steps; i++ {
		w.step()
		if w.rng.IntN(3) > 0 { // sometimes several steps go into one sync
			h.sync()
		}
	}
	h.sync()
	h.verifyAll()
}

// TestRoundTripRandomWorkload replicates random activity and checks that
// every TXID and timestamp restores to exactly what was committed.
func TestRoundTripRandomWorkload(t *testing.T) {
	runWorkload(t, 4096, 40, 1)
}

// TestRoundTripPageSizes runs a shorter workload at every page size.
func TestRoundTripPageSizes(t *testing.T) {
	for _, ps := range []int{512, 1024, 4096, 8192, 16384, 32768, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			t.Parallel()
			runWorkload(t, ps, 12, 2)
		})
	}
}
