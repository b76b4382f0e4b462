package sftp

import (
	"context"
	"io"

	"github.com/pkg/sftp"
)

// Read-ahead of an opened file. Each Read of an *sftp.File is a round
// trip, and the LTX decoder reads a few KiB at a time: over a 50 ms link
// a 300 KB restore took ~350 round trips. A Read larger than the
// library's packet size is split into concurrent requests, so a large
// buffer costs one round trip. The read-ahead starts small, since many
// readers want only a file's header, and doubles with every fill; a
// larger Read is cut to the fill size too, so a download that is cut off
// has made progress in steps and resumes mid-file.
const (
	readAheadMin = 16 << 10
	readAheadMax = 1 << 20
)

// fileReader reads an opened replica file through a growing read-ahead
// buffer. Like the other calls it honours ctx: if ctx ends while the file
// is open and a request hangs, the connection is closed under it.
type fileReader struct {
	f    *sftp.File
	src  io.Reader // f, limited to the requested range
	buf  []byte    // fetched, not yet delivered: buf[pos:]
	pos  int
	next int   // size of the next fill
	err  error // ended the last fill; returned once buf is drained
	stop func()
}

// newFileReader reads f from its current offset; size 0 reads to the end,
// else at most size bytes, and never requests bytes beyond them.
func newFileReader(ctx context.Context, conn *connection, f *sftp.File, size int64) *fileReader {
	var src io.Reader = f
	if size > 0 {
		src = io.LimitReader(f, size)
	}
	return &fileReader{f: f, src: src, next: readAheadMin, stop: conn.closeWhenDone(ctx)}
}

func (r *fileReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.pos == len(r.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) >= r.next { // as large as a fill: no need to copy
			n, err := r.src.Read(p[:r.next])
			r.next = min(2*r.next, readAheadMax)
			return n, err
		}
		r.fill()
		if r.pos == len(r.buf) {
			return 0, r.err
		}
	}
	n := copy(p, r.buf[r.pos:])
	r.pos += n
	return n, nil
}

// fill fetches the next r.next bytes (fewer at the end of the range).
// The bytes that arrived before an error are kept: a resumed download
// continues after them.
func (r *fileReader) fill() {
	if cap(r.buf) < r.next {
		r.buf = make([]byte, r.next)
	}
	n, err := r.src.Read(r.buf[:r.next])
	r.buf, r.pos, r.err = r.buf[:n], 0, err
	r.next = min(2*r.next, readAheadMax)
}

// Close closes the file; a Close that hangs is bounded by ctx too.
func (r *fileReader) Close() error {
	err := r.f.Close()
	r.stop()
	return err
}
