// Package ltxheader recovers the creation time of an LTX file from its
// header. Backends that cannot store the timestamp as metadata (SFTP's
// mtime has whole-second resolution, WebDAV cannot set it at all) read the
// first bytes of each file instead when an exact time is asked for.
package ltxheader

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/superfly/ltx"
)

// Size is the number of leading bytes a caller must read: the whole
// header, so the magic can be checked along with the timestamp.
const Size = ltx.HeaderSize

// timestampOffset is where the big-endian int64 millisecond timestamp
// sits in the header.
const timestampOffset = 32

// Timestamp returns the header timestamp of an LTX file whose first Size
// bytes are b.
func Timestamp(b []byte) (time.Time, error) {
	if len(b) < Size {
		return time.Time{}, fmt.Errorf("ltx header too short: %d bytes", len(b))
	}
	if !bytes.Equal(b[:len(ltx.Magic)], []byte(ltx.Magic)) {
		return time.Time{}, errors.New("not an ltx file (bad magic)")
	}
	ms := int64(binary.BigEndian.Uint64(b[timestampOffset:]))
	return time.UnixMilli(ms).UTC(), nil
}

// ReadFunc returns the first Size bytes of one file. An error wrapping
// os.ErrNotExist means the file went away after it was listed.
type ReadFunc func(ctx context.Context, info *ltx.FileInfo) ([]byte, error)

// FillCreatedAt sets CreatedAt of every info from its header, running up
// to concurrency reads at once. Files deleted while this runs are dropped
// from the result; a file whose header cannot be parsed keeps the
// CreatedAt it had (the server's mtime), so one damaged file does not
// hide the rest of the level.
func FillCreatedAt(ctx context.Context, infos []*ltx.FileInfo, concurrency int, read ReadFunc) ([]*ltx.FileInfo, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	gone := make([]bool, len(infos))
	errs := make([]error, len(infos))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, info := range infos {
		if err := ctx.Err(); err != nil {
			wg.Wait()
			return nil, err
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := read(ctx, info)
			switch {
			case errors.Is(err, os.ErrNotExist):
				gone[i] = true
			case err != nil:
				errs[i] = err
			default:
				if ts, err := Timestamp(b); err == nil {
					info.CreatedAt = ts
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err // the first is enough: the rest are usually the same
		}
	}
	out := infos[:0]
	for i, info := range infos {
		if !gone[i] {
			out = append(out, info)
		}
	}
	return out, nil
}
