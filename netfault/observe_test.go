package netfault_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// observedClient records every OpenLTXFile call and the bytes each opened
// stream delivered, so a test can tell a download resumed at the byte it
// had reached from one started over.
type observedClient struct {
	litestream.ReplicaClient

	mu     sync.Mutex
	opens  []*openRecord
	trip   *tripwire
	writes int // WriteLTXFile calls started
	failed int // WriteLTXFile calls that returned an error
}

// tripwire injects a fault into a download in progress: once a stream
// has delivered after bytes, fire is called (at most times times), and
// the next reopen of a file mid-way calls heal first.
type tripwire struct {
	after      int64
	times      int
	fire, heal func()
	fired      int
	active     bool
}

// openRecord is one OpenLTXFile call.
type openRecord struct {
	file   string // level/min-max
	offset int64
	read   int64 // bytes delivered by this stream (guarded by observedClient.mu)
	err    error // the error that ended the stream, if any (guarded too)

	tripped bool // the tripwire fired during this stream
}

// Unwrap exposes the backend's client, so the engine still finds what it
// implements beyond ReplicaClient (the single-writer lease).
func (c *observedClient) Unwrap() litestream.ReplicaClient { return c.ReplicaClient }

func (c *observedClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	c.mu.Lock()
	heal := offset > 0 && c.trip != nil && c.trip.active
	if heal {
		c.trip.active = false
	}
	c.mu.Unlock()
	if heal {
		c.trip.heal()
	}
	rc, err := c.ReplicaClient.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	rec := &openRecord{file: fmt.Sprintf("%d/%s", level, ltx.FormatFilename(minTXID, maxTXID)), offset: offset}
	c.mu.Lock()
	c.opens = append(c.opens, rec)
	c.mu.Unlock()
	return &countingReader{ReadCloser: rc, c: c, rec: rec}, nil
}

func (c *observedClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	info, err := c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	if err != nil {
		c.mu.Lock()
		c.failed++
		c.mu.Unlock()
	}
	return info, err
}

// writesFailed returns how many uploads have failed.
func (c *observedClient) writesFailed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// writesStarted returns how many uploads have begun.
func (c *observedClient) writesStarted() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// reset forgets what was recorded so far and sets the tripwire (nil for
// none).
func (c *observedClient) reset(trip *tripwire) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opens, c.trip = nil, trip
}

// resumeReport checks the recorded opens. A file may be read more than
// once from byte 0 (restore reads every header first, then the pages),
// but a stream that failed must be followed by an open exactly where it
// stopped: a resume, never a restart. (A stream that failed before
// delivering a byte, as a read-ahead client's may, is resumed at 0.) It returns how many opens resumed
// mid-file and a description of any open that broke the rule.
func (c *observedClient) resumeReport() (resumed int, problems []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := map[string]*openRecord{}
	for _, rec := range c.opens {
		prev := last[rec.file]
		failed := prev != nil && prev.err != nil
		reached := int64(0)
		if prev != nil {
			reached = prev.offset + prev.read
		}
		switch {
		case rec.offset == 0 && failed && reached > 0 && !errors.Is(prev.err, io.EOF):
			problems = append(problems, fmt.Sprintf("%s: read again from byte 0 after a stream failed at byte %d (%v)", rec.file, reached, prev.err))
		case rec.offset != 0 && !failed:
			problems = append(problems, fmt.Sprintf("%s: opened at byte %d, but no stream of it had failed", rec.file, rec.offset))
		case rec.offset != 0 && rec.offset != reached:
			problems = append(problems, fmt.Sprintf("%s: reopened at byte %d after a stream failed at byte %d", rec.file, rec.offset, reached))
		case rec.offset != 0:
			resumed++
		}
		last[rec.file] = rec
	}
	return resumed, problems
}

// summary lists the opens per file, for failure messages and logs.
func (c *observedClient) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	per := map[string][]string{}
	for _, rec := range c.opens {
		mark := ""
		if rec.err != nil && !errors.Is(rec.err, io.EOF) {
			mark = "!"
		}
		per[rec.file] = append(per[rec.file], fmt.Sprintf("@%d+%d%s", rec.offset, rec.read, mark))
	}
	var lines []string
	for f, a := range per {
		lines = append(lines, f+" "+strings.Join(a, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}

type countingReader struct {
	io.ReadCloser
	c   *observedClient
	rec *openRecord
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.c.mu.Lock()
	r.rec.read += int64(n)
	if err != nil && r.rec.err == nil {
		r.rec.err = err
	}
	t := r.c.trip
	fire := t != nil && !t.active && t.fired < t.times && r.rec.read >= t.after && !r.rec.tripped
	if fire {
		t.active, r.rec.tripped = true, true
		t.fired++
	}
	r.c.mu.Unlock()
	if fire {
		t.fire()
	}
	return n, err
}
