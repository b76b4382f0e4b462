package ltxfile

import (
	"bufio"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/superfly/ltx"
)

// Input is one file of a chain to apply.
type Input struct {
	Name string                        // used in error messages
	Open func() (io.ReadCloser, error) // opened lazily, at most maxOpen at a time
}

// maxOpen bounds how many files are streamed at once; longer chains are
// merged in consecutive groups. Pages are written in place, so later
// groups simply overwrite what earlier groups wrote, exactly as applying
// the files one by one would.
const maxOpen = 32

// PageWriter receives the final content of each page, in ascending page
// order within a group, one page per WriteAt unless it came from Runs.
type PageWriter interface {
	WriteAt(p []byte, off int64) (int, error)
}

// Runs marks w as accepting several consecutive pages in one WriteAt, as
// a file does, so Apply gathers runs of pages into large writes instead
// of one system call per page.
func Runs(w io.WriterAt) PageWriter { return runWriter{w} }

type runWriter struct{ io.WriterAt }

// Result describes the database a chain produced.
type Result struct {
	PageSize uint32
	Commit   uint32 // database size in pages
	MaxTXID  ltx.TXID
	Trailer  ltx.Trailer // trailer of the newest file
	Pages    int64       // pages written
}

// Apply merges a chain of LTX files (oldest first; the first must be a
// full image) into w. For every page the newest file wins; pages beyond
// the final commit and the lock page are never written. Every file's
// checksum is verified, and the chain must cover every page of the final
// database. Memory is bounded whatever the chain's length or the
// database's size: a few MiB of read-ahead and write buffers, plus one
// bit per database page.
func Apply(w PageWriter, inputs []Input) (*Result, error) {
	return ApplyWithProgress(w, inputs, nil)
}

// Progress receives how many pages have been written so far and the final
// database size in pages. Calls are infrequent (every few hundred pages).
type Progress func(written int64, total uint32)

// ApplyWithProgress is Apply reporting progress to fn, which may be nil.
func ApplyWithProgress(w PageWriter, inputs []Input, fn Progress) (*Result, error) {
	if len(inputs) == 0 {
		return nil, errors.New("apply: no files")
	}
	hdrs, err := readHeaders(inputs)
	if err != nil {
		return nil, err
	}
	last := hdrs[len(hdrs)-1]
	res := &Result{PageSize: last.PageSize, Commit: last.Commit, MaxTXID: last.MaxTXID}
	out := newPageSink(w, res, fn)
	for i := 0; i < len(inputs); i += maxOpen {
		j := min(i+maxOpen, len(inputs))
		trailer, err := applyGroup(out, inputs[i:j], res)
		if err != nil {
			return nil, err
		}
		res.Trailer = trailer
	}
	if fn != nil {
		fn(res.Pages, res.Commit)
	}
	if missing, ok := out.written.firstMissing(res.Commit, ltx.LockPgno(res.PageSize)); !ok {
		return nil, fmt.Errorf("%w: page %d of %d is missing (does the chain start with a full snapshot?)", ErrIncomplete, missing, res.Commit)
	}
	return res, nil
}

// maxRunBytes and maxRunPages bound one gathered write: large enough
// that system calls are rare (64 pages of 4 KiB per write instead of one),
// small enough that the buffer adds little to peak memory (its size
// counts twice there, through the garbage collector's heap goal) and
// that progress is reported every few hundred pages.
const (
	maxRunBytes = 256 << 10
	maxRunPages = 256
)

// pageSink writes the merged pages: consecutive pages are gathered into
// one WriteAt when the writer takes runs, progress is reported after
// each write of a few hundred pages, and the pages written are recorded.
type pageSink struct {
	w        PageWriter
	res      *Result
	fn       Progress
	written  *pageSet
	reported int64 // res.Pages at the last progress report

	buf   []byte // gathered run; nil for a one-page-per-write writer
	first uint32 // page number of buf's first page
	n     int    // pages gathered
	wb    writeback
}

func newPageSink(w PageWriter, res *Result, fn Progress) *pageSink {
	s := &pageSink{w: w, res: res, fn: fn, written: newPageSet()}
	if rw, ok := w.(runWriter); ok {
		s.w = rw.WriterAt
		pages := min(max(maxRunBytes/int(res.PageSize), 1), maxRunPages)
		s.buf = make([]byte, pages*int(res.PageSize))
		s.wb = newWriteback(rw.WriterAt)
	}
	return s
}

func (s *pageSink) add(pgno uint32, data []byte) error {
	if s.buf == nil {
		s.first, s.n = pgno, 1
		return s.write(data)
	}
	size := len(data)
	if s.n > 0 && (pgno != s.first+uint32(s.n) || (s.n+1)*size > len(s.buf)) {
		if err := s.flush(); err != nil {
			return err
		}
	}
	if s.n == 0 {
		s.first = pgno
	}
	copy(s.buf[s.n*size:], data)
	s.n++
	return nil
}

// flush writes the gathered run, if any.
func (s *pageSink) flush() error {
	if s.n == 0 {
		return nil
	}
	return s.write(s.buf[:s.n*int(s.res.PageSize)])
}

// write writes the s.n pages in p, starting at page s.first.
func (s *pageSink) write(p []byte) error {
	off := int64(s.first-1) * int64(s.res.PageSize)
	if _, err := s.w.WriteAt(p, off); err != nil {
		if s.n == 1 {
			return fmt.Errorf("write page %d: %w", s.first, err)
		}
		return fmt.Errorf("write pages %d-%d: %w", s.first, s.first+uint32(s.n)-1, err)
	}
	for i := range uint32(s.n) {
		s.written.add(s.first + i)
	}
	s.wb.wrote(off, int64(len(p)))
	s.res.Pages += int64(s.n)
	s.n = 0
	if s.fn != nil && s.res.Pages-s.reported >= maxRunPages {
		s.reported = s.res.Pages
		s.fn(s.res.Pages, s.res.Commit)
	}
	return nil
}

// ErrEncrypted means a file is age-encrypted and no identity was
// configured to read it.
var ErrEncrypted = errors.New("file is age-encrypted: configure the replica's age identities to read it")

// isAgeEncrypted reports whether an age file follows the LTX header.
func isAgeEncrypted(br *bufio.Reader) bool {
	const magic = "age-encryption.org/v1\n"
	b, err := br.Peek(len(magic))
	return err == nil && string(b) == magic
}

// readHeaders checks that every file has a valid header with the same
// page size and that TXIDs are contiguous, before any page is written.
func readHeaders(inputs []Input) ([]ltx.Header, error) {
	hdrs := make([]ltx.Header, len(inputs))
	for i, in := range inputs {
		rc, err := in.Open()
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", in.Name, err)
		}
		br := bufio.NewReader(rc)
		hdr, err := ReadHeader(br)
		if err == nil && isAgeEncrypted(br) {
			err = ErrEncrypted
		}
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		if i > 0 {
			prev := hdrs[i-1]
			if hdr.PageSize != prev.PageSize {
				return nil, fmt.Errorf("%s: page size %d differs from %d in the previous file", in.Name, hdr.PageSize, prev.PageSize)
			}
			if !ltx.IsContiguous(prev.MaxTXID, hdr.MinTXID, hdr.MaxTXID) {
				return nil, fmt.Errorf("%s: TXIDs %s-%s do not follow %s", in.Name, hdr.MinTXID, hdr.MaxTXID, prev.MaxTXID)
			}
		}
		hdrs[i] = hdr
	}
	return hdrs, nil
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if h[i].pgno != h[j].pgno {
		return h[i].pgno < h[j].pgno
	}
	return h[i].idx > h[j].idx // newest first for the same page
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

func applyGroup(out *pageSink, inputs []Input, res *Result) (ltx.Trailer, error) {
	trailer, err := merge(inputs, res.PageSize, res.Commit, readAhead, out.add)
	if err != nil {
		return trailer, err
	}
	return trailer, out.flush()
}

// merge streams the pages of inputs in ascending page order, the newest
// version of each page only, skipping pages above commit and the lock
// page, and returns the trailer of the newest input. Every input is read
// to its end, so every file checksum is verified. emit must be done with
// data when it returns.
func merge(inputs []Input, pageSize, commit uint32, b budget, emit func(pgno uint32, data []byte) error) (_ ltx.Trailer, err error) {
	var (
		closers  []io.Closer
		cursors  []*cursor
		decoding sync.WaitGroup
		stop     = make(chan struct{})
	)
	defer func() {
		// Decoding goroutines use the readers until they return.
		close(stop)
		decoding.Wait()
		for _, c := range closers {
			c.Close()
		}
	}()
	h := make(cursorHeap, 0, len(inputs))
	for i, in := range inputs {
		rc, err := in.Open()
		if err != nil {
			return ltx.Trailer{}, fmt.Errorf("open %s: %w", in.Name, err)
		}
		closers = append(closers, rc)
		c, err := startDecoding(i, in.Name, rc, pageSize, b, len(inputs), stop, &decoding)
		if err != nil {
			return ltx.Trailer{}, err
		}
		cursors = append(cursors, c)
	}
	for _, c := range cursors {
		if err := c.advance(); err != nil {
			return ltx.Trailer{}, err
		}
		if c.pgno != 0 {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	lockPgno := ltx.LockPgno(pageSize)
	for h.Len() > 0 {
		top := h[0]
		pgno := top.pgno
		if pgno <= commit && pgno != lockPgno {
			if err := emit(pgno, top.data); err != nil {
				return ltx.Trailer{}, err
			}
		}
		// Advance every cursor positioned on this page; older versions
		// are superseded.
		for h.Len() > 0 && h[0].pgno == pgno {
			c := h[0]
			if err := c.advance(); err != nil {
				return ltx.Trailer{}, err
			}
			if c.pgno == 0 {
				heap.Pop(&h)
			} else if c.pgno <= pgno {
				return ltx.Trailer{}, fmt.Errorf("%s: page %d out of order after page %d", c.name, c.pgno, pgno)
			} else {
				heap.Fix(&h, 0)
			}
		}
	}
	return cursors[len(cursors)-1].trailer, nil
}

// MaxCompactInputs bounds how many files one compaction may merge; callers
// split longer runs into consecutive compactions.
const MaxCompactInputs = maxOpen

// Compact merges a contiguous run of LTX files (oldest first) into one
// file written to w, the way Litestream compacts: newest page wins, pages
// beyond the final commit and the lock page are dropped, the TXID range
// spans the inputs, WAL fields are zero, and the timestamp is that of the
// newest input, so a timestamp restore never includes a later change. The
// output is a snapshot when the first input starts at TXID 1.
func Compact(w io.Writer, inputs []Input) (ltx.Header, error) {
	return CompactWithProgress(w, inputs, nil)
}

// CompactWithProgress is Compact, calling pages (when not nil) after each
// page written with the count so far and the expected total: the database
// size in pages for a snapshot, 0 (unknown) for other compactions.
func CompactWithProgress(w io.Writer, inputs []Input, pages func(done, total int64)) (ltx.Header, error) {
	return compact(w, inputs, compactedHeader, pages, "compact")
}

// compactedHeader is the header of a compaction: the TXID range of the
// inputs, the newest timestamp, no WAL fields.
func compactedHeader(hdrs []ltx.Header) ltx.Header {
	first, last := hdrs[0], hdrs[len(hdrs)-1]
	return ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  first.PageSize,
		Commit:    last.Commit,
		MinTXID:   first.MinTXID,
		MaxTXID:   last.MaxTXID,
		Timestamp: newestTimestamp(hdrs),
	}
}

func newestTimestamp(hdrs []ltx.Header) int64 {
	ts := hdrs[len(hdrs)-1].Timestamp
	for _, h := range hdrs {
		ts = max(ts, h.Timestamp)
	}
	return ts
}

// Merge writes consecutive level-0 files (oldest first) as one level-0
// file covering all their TXIDs, so that several files go to the replica
// in one upload. Pages merge as in Compact, but the file stays what the
// newest input is: its header is the newest input's (flags, commit, WAL
// offset, size and salts, which tell where reading the WAL continues and
// which database wrote it) with the first input's MinTXID and pre-apply
// checksum and the newest timestamp of all, and its trailer carries the
// newest input's post-apply checksum.
func Merge(w io.Writer, inputs []Input) (ltx.Header, error) {
	return compact(w, inputs, mergedHeader, nil, "merge")
}

func mergedHeader(hdrs []ltx.Header) ltx.Header {
	hdr := hdrs[len(hdrs)-1]
	hdr.MinTXID, hdr.PreApplyChecksum = hdrs[0].MinTXID, hdrs[0].PreApplyChecksum
	hdr.Timestamp = newestTimestamp(hdrs)
	return hdr
}

// compact merges inputs into w under the header makeHeader derives from
// theirs; op names the operation in errors.
func compact(w io.Writer, inputs []Input, makeHeader func([]ltx.Header) ltx.Header, pages func(done, total int64), op string) (ltx.Header, error) {
	if len(inputs) == 0 || len(inputs) > MaxCompactInputs {
		return ltx.Header{}, fmt.Errorf("%s: %d inputs (want 1..%d)", op, len(inputs), MaxCompactInputs)
	}
	hdrs, err := readHeaders(inputs)
	if err != nil {
		return ltx.Header{}, fmt.Errorf("%s: %w", op, err)
	}
	hdr := makeHeader(hdrs)
	enc, err := ltx.NewEncoder(w)
	if err != nil {
		return ltx.Header{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return ltx.Header{}, fmt.Errorf("%s: encode header: %w", op, err)
	}
	var done, total int64
	if hdr.IsSnapshot() {
		total = int64(hdr.Commit)
		if lock := ltx.LockPgno(hdr.PageSize); lock <= hdr.Commit {
			total-- // never written
		}
	}
	trailer, err := merge(inputs, hdr.PageSize, hdr.Commit, readAhead, func(pgno uint32, data []byte) error {
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, data); err != nil {
			return err
		}
		if pages != nil {
			done++
			pages(done, total)
		}
		return nil
	})
	if err != nil {
		return ltx.Header{}, fmt.Errorf("%s: %w", op, err)
	}
	if !hdr.NoChecksum() {
		enc.SetPostApplyChecksum(trailer.PostApplyChecksum)
	}
	if err := enc.Close(); err != nil {
		return ltx.Header{}, fmt.Errorf("%s: %w", op, err)
	}
	return hdr, nil
}

// pageSet is a sparse bitmap of page numbers, allocated in chunks so a
// hostile header with an absurd commit cannot force a huge allocation.
type pageSet struct {
	chunks map[uint32]*[1024]uint64 // 65536 pages per chunk
}

func newPageSet() *pageSet { return &pageSet{chunks: make(map[uint32]*[1024]uint64)} }

func (s *pageSet) add(pgno uint32) {
	c := s.chunks[pgno>>16]
	if c == nil {
		c = new([1024]uint64)
		s.chunks[pgno>>16] = c
	}
	c[(pgno&0xffff)>>6] |= 1 << (pgno & 63)
}

func (s *pageSet) has(pgno uint32) bool {
	c := s.chunks[pgno>>16]
	return c != nil && c[(pgno&0xffff)>>6]&(1<<(pgno&63)) != 0
}

// firstMissing returns the lowest page in 1..commit (except skip) that is
// not in the set. A per-page loop is fast enough: 2.6M pages for a 10 GB
// database take milliseconds.
func (s *pageSet) firstMissing(commit, skip uint32) (uint32, bool) {
	for pgno := uint32(1); pgno <= commit && pgno != 0; pgno++ {
		if pgno != skip && !s.has(pgno) {
			return pgno, false
		}
	}
	return 0, true
}
