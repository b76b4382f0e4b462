package ltxfile

import "syscall"

// writebackBytes is how much a file writer gathers before it asks the
// kernel to start writing it to disk.
const writebackBytes = 8 << 20

// writeback starts the disk writes of a file while pages are still being
// decoded, instead of leaving a database's worth of dirty pages to the
// final fsync: the disk then works alongside the decoding, and the fsync
// finds little left to do. It only starts writes; durability still comes
// from the caller's fsync.
type writeback struct {
	conn    syscall.RawConn // nil: not a file, nothing to do
	lo, hi  int64           // byte range written since the last start
	pending int64
}

func newWriteback(w any) writeback {
	f, ok := w.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return writeback{}
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return writeback{}
	}
	return writeback{conn: conn}
}

// wrote records a write of n bytes at off and starts writeback once
// enough has gathered.
func (wb *writeback) wrote(off, n int64) {
	if wb.conn == nil {
		return
	}
	if wb.pending == 0 {
		wb.lo, wb.hi = off, off+n
	} else {
		wb.lo, wb.hi = min(wb.lo, off), max(wb.hi, off+n)
	}
	wb.pending += n
	if wb.pending >= writebackBytes {
		startWriteback(wb.conn, wb.lo, wb.hi-wb.lo)
		wb.pending = 0
	}
}
