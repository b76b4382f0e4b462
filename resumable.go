package litestream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/superfly/ltx"
)

// resumableReader reads a replica file and, when the connection drops
// mid-file, reopens it at the byte it had reached instead of starting
// over: a restore of a large file over a flaky network keeps its progress.
// A premature EOF (fewer bytes than the listed size) counts as a drop.
type resumableReader struct {
	ctx     context.Context
	client  ReplicaClient
	info    *ltx.FileInfo
	rc      io.ReadCloser
	offset  int64
	retries int
	atEnd   bool // the last resume followed an EOF
}

// maxResumes bounds reopen attempts per file; backoff doubles from 100ms.
const maxResumes = 5

func openResumable(ctx context.Context, client ReplicaClient, info *ltx.FileInfo) (io.ReadCloser, error) {
	rc, err := client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
	if err != nil {
		return nil, err
	}
	return &resumableReader{ctx: ctx, client: client, info: info, rc: rc}, nil
}

func (r *resumableReader) Read(p []byte) (int, error) {
	// Backends that read local files never look at ctx; checking it here
	// (once per buffered read) lets a cancelled restore stop mid-file.
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	for {
		n, err := r.rc.Read(p)
		r.offset += int64(n)
		if err == nil || n > 0 {
			if n > 0 {
				r.retries = 0 // the limit is on failures in a row, not per file
			}
			r.atEnd = false
			return n, nil
		}
		if errors.Is(err, io.EOF) && (r.info.Size <= 0 || r.offset >= r.info.Size || r.atEnd) {
			return 0, io.EOF
		}
		// An EOF before the listed size is a dropped stream — or a layer
		// (like encryption) that lists stored sizes: after a resume, an
		// immediate EOF is believed.
		r.atEnd = errors.Is(err, io.EOF)
		if rerr := r.resume(err); rerr != nil {
			return 0, rerr
		}
	}
}

// resume reopens the file at the current offset after cause.
func (r *resumableReader) resume(cause error) error {
	if errors.Is(cause, fs.ErrNotExist) || r.ctx.Err() != nil || r.retries >= maxResumes {
		if errors.Is(cause, io.EOF) {
			cause = fmt.Errorf("file ended at byte %d of %d: %w", r.offset, r.info.Size, io.ErrUnexpectedEOF)
		}
		return cause
	}
	r.rc.Close()
	if !errors.Is(cause, io.EOF) { // errors back off; a short file is asked again at once
		delay := 100 * time.Millisecond << r.retries
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(delay):
		}
	}
	r.retries++
	rc, err := r.client.OpenLTXFile(r.ctx, r.info.Level, r.info.MinTXID, r.info.MaxTXID, r.offset, 0)
	if err != nil {
		return fmt.Errorf("resume at byte %d after %v: %w", r.offset, cause, err)
	}
	r.rc = rc
	return nil
}

func (r *resumableReader) Close() error { return r.rc.Close() }
