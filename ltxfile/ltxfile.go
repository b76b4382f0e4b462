// Package ltxfile is the project's thin layer over github.com/superfly/ltx:
// it writes LTX files the way Litestream v0.5 does (no database checksums,
// lock page skipped) and applies a chain of LTX files to a database file
// with a streaming k-way merge that writes each final page once. Keeping
// the codec behind this package makes a library upgrade a local change.
package ltxfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/superfly/ltx"
)

// Header returns an LTX header filled the way Litestream v0.5 fills it:
// database checksums are not tracked (flag NoChecksum, zero checksums), so
// upstream tools can read and compact the file.
func Header(pageSize, commit uint32, minTXID, maxTXID ltx.TXID, ts time.Time) ltx.Header {
	return ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  pageSize,
		Commit:    commit,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Timestamp: ts.UnixMilli(),
	}
}

// PageReader fills buf with the content of page pgno.
type PageReader func(pgno uint32, buf []byte) error

// Encode writes an LTX file with the given pages (ascending, each at most
// once) to w. The lock page is skipped if present. It returns the number
// of bytes written.
func Encode(w io.Writer, hdr ltx.Header, pgnos []uint32, read PageReader) (int64, error) {
	enc, err := ltx.NewEncoder(w)
	if err != nil {
		return 0, fmt.Errorf("new ltx encoder: %w", err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return 0, fmt.Errorf("encode ltx header: %w", err)
	}
	lockPgno := ltx.LockPgno(hdr.PageSize)
	buf := make([]byte, hdr.PageSize)
	for _, pgno := range pgnos {
		if pgno == lockPgno {
			continue
		}
		if err := read(pgno, buf); err != nil {
			return 0, fmt.Errorf("read page %d: %w", pgno, err)
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, buf); err != nil {
			return 0, fmt.Errorf("encode page %d: %w", pgno, err)
		}
	}
	if err := enc.Close(); err != nil {
		return 0, fmt.Errorf("close ltx encoder: %w", err)
	}
	return enc.N(), nil
}

// ErrIncomplete means a chain of files does not hold every page of the
// database it describes, so applying it cannot produce a valid database.
var ErrIncomplete = errors.New("ltx chain does not cover every database page")

// ReadHeader reads and validates the header at the start of r.
func ReadHeader(r io.Reader) (ltx.Header, error) {
	dec := ltx.NewDecoder(r)
	if err := dec.DecodeHeader(); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ltx.Header{}, fmt.Errorf("truncated ltx header: %w", err)
		}
		return ltx.Header{}, fmt.Errorf("invalid ltx header: %w", err)
	}
	return dec.Header(), nil
}

// wholeFileBuf buffers a decoder that reads a whole file, which would
// otherwise issue three small reads per page.
const wholeFileBuf = 64 << 10

// Verify decodes a whole file and checks its file checksum.
func Verify(r io.Reader) (ltx.Header, error) {
	dec := ltx.NewDecoder(bufio.NewReaderSize(r, wholeFileBuf))
	dec.SetRetainPageIndex(false)
	if err := dec.Verify(); err != nil {
		return dec.Header(), err
	}
	return dec.Header(), nil
}

// Rebase copies an LTX file from r to w with its TXID range starting at
// minTXID instead; every other header field and every page is kept. It
// turns a full-image level-0 file N-N into the snapshot 1-N.
func Rebase(w io.Writer, r io.Reader, minTXID ltx.TXID) error {
	dec := ltx.NewDecoder(bufio.NewReaderSize(r, wholeFileBuf))
	dec.SetRetainPageIndex(false)
	if err := dec.DecodeHeader(); err != nil {
		return fmt.Errorf("rebase: decode header: %w", err)
	}
	hdr := dec.Header()
	hdr.MinTXID = minTXID
	hdr.PreApplyChecksum = 0
	enc, err := ltx.NewEncoder(w)
	if err != nil {
		return fmt.Errorf("rebase: %w", err)
	}
	if err := enc.EncodeHeader(hdr); err != nil {
		return fmt.Errorf("rebase: encode header: %w", err)
	}
	buf := make([]byte, hdr.PageSize)
	for {
		var ph ltx.PageHeader
		if err := dec.DecodePage(&ph, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("rebase: decode page: %w", err)
		}
		if err := enc.EncodePage(ltx.PageHeader{Pgno: ph.Pgno}, buf); err != nil {
			return fmt.Errorf("rebase: encode page %d: %w", ph.Pgno, err)
		}
	}
	if err := dec.Close(); err != nil {
		return fmt.Errorf("rebase: verify source: %w", err)
	}
	enc.SetPostApplyChecksum(dec.Trailer().PostApplyChecksum)
	if err := enc.Close(); err != nil {
		return fmt.Errorf("rebase: %w", err)
	}
	return nil
}
