package agecrypt

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

var (
	errNotAge   = errors.New("not an age file")
	errNotExist = os.ErrNotExist
)

// window is how much a ranged read fetches at once: age reads 64 KiB
// chunks one ReadAt at a time, and one request per chunk would be slow
// against an object store.
const window = 4 << 20

// rangeReaderAt serves ReadAt from ranged reads of a replica object,
// starting base bytes into it, caching one window.
type rangeReaderAt struct {
	ctx              context.Context
	c                litestream.ReplicaClient
	level            int
	minTXID, maxTXID ltx.TXID
	base             int64

	mu     sync.Mutex
	bufOff int64
	buf    []byte
	magic  bool
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) {
		o := off + int64(n)
		if o >= r.bufOff && o < r.bufOff+int64(len(r.buf)) {
			n += copy(p[n:], r.buf[o-r.bufOff:])
			continue
		}
		if err := r.fill(o, max(len(p)-n, window)); err != nil {
			return n, err
		}
		if len(r.buf) == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

func (r *rangeReaderAt) fill(off int64, size int) error {
	rc, err := r.c.OpenLTXFile(r.ctx, r.level, r.minTXID, r.maxTXID, r.base+off, int64(size))
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, size)
	n, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	r.bufOff, r.buf = off, buf[:n]
	if off == 0 && n >= len(ageMagic) && string(buf[:len(ageMagic)]) == ageMagic {
		r.magic = true
	}
	return nil
}

func (r *rangeReaderAt) sawMagic() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.magic
}
