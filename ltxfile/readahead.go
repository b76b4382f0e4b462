package ltxfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/superfly/ltx"
)

// budget bounds the memory a merge spends reading ahead, whatever the
// number of inputs or the database size: input buffers and queued decoded
// pages are split between the open inputs.
type budget struct {
	read   int // bytes of buffered input, all open inputs together
	decode int // bytes of decoded pages in flight, all open inputs together
}

// readAhead serves restores and compaction (inside the replicating
// daemon) alike. It is small: every live byte counts about twice in peak
// memory (the garbage collector lets the heap grow to twice what is
// live, and the decoder allocates per page), and a few dozen pages of
// read-ahead per input already keep both cores busy.
var readAhead = budget{read: 512 << 10, decode: 512 << 10}

const (
	minReadBuf = 16 << 10
	maxReadBuf = 256 << 10
	// batchesPerInput is the ring of batches each input cycles through:
	// one being filled, one being merged, the rest queued between them.
	batchesPerInput = 4
	maxBatchPages   = 64
)

// readBuf is the input buffer size for each of n open inputs. The LTX
// decoder issues three small reads per page; buffering turns them into a
// few large ones.
func (b budget) readBuf(n int) int {
	return min(max(b.read/n, minReadBuf), maxReadBuf)
}

// batchPages is how many pages one batch holds for each of n open inputs.
func (b budget) batchPages(n int, pageSize uint32) int {
	return min(max(b.decode/n/batchesPerInput/int(pageSize), 1), maxBatchPages)
}

// batch is a run of decoded pages of one input, handed from its decoding
// goroutine to the merge and back for reuse.
type batch struct {
	pgnos   []uint32
	data    []byte
	n       int         // pages filled
	err     error       // the input failed after these pages
	last    bool        // the input ended after these pages, checksum verified
	trailer ltx.Trailer // set with last
}

func newBatch(pages int, pageSize uint32) *batch {
	return &batch{pgnos: make([]uint32, pages), data: make([]byte, pages*int(pageSize))}
}

func (b *batch) page(i int) []byte {
	size := len(b.data) / len(b.pgnos)
	return b.data[i*size : (i+1)*size]
}

// fill decodes pages into b until it is full or the input ends; at the
// end it closes the decoder, which verifies the page index and the file
// checksum.
func (b *batch) fill(dec *ltx.Decoder, name string) {
	b.n = 0
	for b.n < len(b.pgnos) {
		var ph ltx.PageHeader
		err := dec.DecodePage(&ph, b.page(b.n))
		if errors.Is(err, io.EOF) {
			if err := dec.Close(); err != nil {
				b.err = fmt.Errorf("%s: %w", name, err)
				return
			}
			b.last, b.trailer = true, dec.Trailer()
			return
		} else if err != nil {
			b.err = fmt.Errorf("%s: decode page: %w", name, err)
			return
		}
		b.pgnos[b.n] = ph.Pgno
		b.n++
	}
}

// cursor is one input of a merge, positioned on its next page. A
// goroutine decodes ahead of the merge (LZ4 and CRC-64 on another core)
// into a fixed ring of batches, so memory does not depend on file sizes.
type cursor struct {
	idx  int // position in the chain; higher is newer
	name string
	pgno uint32 // current page; 0 once the input has ended
	data []byte // content of the current page

	cur     *batch
	i       int
	full    chan *batch // decoded, in file order; closed when decoding stops
	free    chan *batch // merged, ready for reuse
	trailer ltx.Trailer // valid once pgno is 0
}

// startDecoding reads the header of r on the caller's goroutine, so
// header errors surface at once, then decodes the pages in the
// background until the input ends, fails or stop is closed. done is
// signalled when the goroutine no longer uses r.
func startDecoding(idx int, name string, r io.Reader, pageSize uint32, b budget, n int, stop <-chan struct{}, done *sync.WaitGroup) (*cursor, error) {
	dec := ltx.NewDecoder(bufio.NewReaderSize(r, b.readBuf(n)))
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return nil, fmt.Errorf("%s: decode header: %w", name, err)
	}
	if got := dec.Header().PageSize; got != pageSize {
		return nil, fmt.Errorf("%s: page size %d, expected %d", name, got, pageSize)
	}
	c := &cursor{idx: idx, name: name, i: -1,
		full: make(chan *batch, batchesPerInput), free: make(chan *batch, batchesPerInput)}
	pages := b.batchPages(n, pageSize)
	for range batchesPerInput {
		c.free <- newBatch(pages, pageSize)
	}
	done.Add(1)
	go func() {
		defer done.Done()
		decodeAhead(dec, name, c.full, c.free, stop)
	}()
	return c, nil
}

func decodeAhead(dec *ltx.Decoder, name string, full chan<- *batch, free <-chan *batch, stop <-chan struct{}) {
	defer close(full)
	for {
		var b *batch
		select {
		case b = <-free:
		case <-stop:
			return
		}
		b.fill(dec, name)
		select {
		case full <- b:
		case <-stop:
			return
		}
		if b.last || b.err != nil {
			return
		}
	}
}

// advance moves to the input's next page. The previous page's content
// must no longer be needed: its batch may be refilled.
func (c *cursor) advance() error {
	c.i++
	for c.cur == nil || c.i >= c.cur.n {
		if c.cur != nil {
			if c.cur.last {
				c.pgno, c.data, c.trailer = 0, nil, c.cur.trailer
				return nil
			}
			c.free <- c.cur // never blocks: the ring holds every batch
			c.cur = nil
		}
		b, ok := <-c.full
		if !ok {
			return fmt.Errorf("%s: decoding stopped", c.name) // only after stop
		}
		if b.err != nil {
			return b.err
		}
		c.cur, c.i = b, 0
	}
	c.pgno, c.data = c.cur.pgnos[c.i], c.cur.page(c.i)
	return nil
}
