package litestream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// SQLite WAL file format constants (https://sqlite.org/fileformat.html#wal_file_format).
const (
	WALHeaderSize      = 32
	WALFrameHeaderSize = 24
	walMagicLE         = 0x377f0682 // checksums computed over little-endian words
	walMagicBE         = 0x377f0683 // checksums computed over big-endian words
	walVersion         = 3007000
)

// errWALHeader means the WAL has no usable header: it is empty, short,
// or its header checksum does not match. SQLite treats such a WAL as
// empty, and so do we.
var errWALHeader = errors.New("no valid wal header")

// walHeader is the 32-byte header at the start of a WAL file.
type walHeader struct {
	bigEndian     bool // checksum word order
	pageSize      uint32
	checkpointSeq uint32
	salt1, salt2  uint32
	checksum      [2]uint32 // seeds the first frame's checksum
}

// frameSize is the size of one frame: header plus page.
func (h walHeader) frameSize() int64 { return WALFrameHeaderSize + int64(h.pageSize) }

// readWALHeader reads and validates the header of the WAL at r.
func readWALHeader(r io.ReaderAt) (walHeader, error) {
	var b [WALHeaderSize]byte
	if n, err := r.ReadAt(b[:], 0); n < len(b) {
		if err == nil || err == io.EOF {
			return walHeader{}, errWALHeader
		}
		return walHeader{}, fmt.Errorf("read wal header: %w", err)
	}
	return parseWALHeader(b[:])
}

func parseWALHeader(b []byte) (walHeader, error) {
	var h walHeader
	switch binary.BigEndian.Uint32(b[0:]) {
	case walMagicLE:
	case walMagicBE:
		h.bigEndian = true
	default:
		return h, errWALHeader
	}
	if binary.BigEndian.Uint32(b[4:]) != walVersion {
		return h, errWALHeader
	}
	h.pageSize = binary.BigEndian.Uint32(b[8:])
	if h.pageSize == 1 { // the file format stores 65536 as 1
		h.pageSize = 65536
	}
	if h.pageSize < 512 || h.pageSize > 65536 || h.pageSize&(h.pageSize-1) != 0 {
		return h, errWALHeader
	}
	h.checkpointSeq = binary.BigEndian.Uint32(b[12:])
	h.salt1 = binary.BigEndian.Uint32(b[16:])
	h.salt2 = binary.BigEndian.Uint32(b[20:])
	sum := walChecksum(h.bigEndian, [2]uint32{}, b[:24])
	if sum[0] != binary.BigEndian.Uint32(b[24:]) || sum[1] != binary.BigEndian.Uint32(b[28:]) {
		return h, errWALHeader
	}
	h.checksum = sum
	return h, nil
}

// walChecksum extends SQLite's WAL checksum over b, whose length must be a
// multiple of 8.
func walChecksum(bigEndian bool, s [2]uint32, b []byte) [2]uint32 {
	s0, s1 := s[0], s[1]
	if bigEndian {
		for i := 0; i+8 <= len(b); i += 8 {
			s0 += binary.BigEndian.Uint32(b[i:]) + s1
			s1 += binary.BigEndian.Uint32(b[i+4:]) + s0
		}
	} else {
		for i := 0; i+8 <= len(b); i += 8 {
			s0 += binary.LittleEndian.Uint32(b[i:]) + s1
			s1 += binary.LittleEndian.Uint32(b[i+4:]) + s0
		}
	}
	return [2]uint32{s0, s1}
}

// walSegment is the result of scanning committed frames of a WAL.
type walSegment struct {
	start    int64            // offset of the first frame scanned
	end      int64            // offset just past the last committed frame
	checksum [2]uint32        // running checksum at end
	commit   uint32           // database size in pages after the last commit; 0 if none
	pages    map[uint32]int64 // page number -> offset of its newest committed frame
	frames   int              // committed frames in the segment

	// broken is set when the frame right at the scan's start carries the
	// WAL's salts but does not continue the checksum chain: the frames
	// before it are no longer the ones the chain was computed over (or a
	// frame is being written); only a check under the write lock can tell.
	broken bool
}

// empty reports whether the scan found no committed transaction.
func (s *walSegment) empty() bool { return s.commit == 0 }

// scanWAL reads frames from offset (which must be a frame boundary whose
// preceding checksum is seed) and returns every committed transaction.
// The first frame whose salts or checksum do not match ends the log, as
// in SQLite; frames after the last commit are ignored. When maxBytes > 0
// the scan stops at the first commit at or beyond that many bytes, so a
// large backlog is split into several level-0 files.
func scanWAL(r io.ReaderAt, size int64, hdr walHeader, offset int64, seed [2]uint32, maxBytes int64) (*walSegment, error) {
	seg := &walSegment{start: offset, end: offset, checksum: seed, pages: make(map[uint32]int64)}
	if offset < WALHeaderSize || (offset-WALHeaderSize)%hdr.frameSize() != 0 {
		return nil, fmt.Errorf("scan wal: offset %d is not a frame boundary", offset)
	}
	br := bufio.NewReaderSize(io.NewSectionReader(r, offset, size-offset), 1<<20)
	frame := make([]byte, hdr.frameSize())
	pending := make(map[uint32]int64)
	sum := seed
	for off := offset; off+hdr.frameSize() <= size; off += hdr.frameSize() {
		if _, err := io.ReadFull(br, frame); err == io.ErrUnexpectedEOF || err == io.EOF {
			break // the WAL is being appended to; stop at what is complete
		} else if err != nil {
			return nil, fmt.Errorf("read wal frame at offset %d: %w", off, err)
		}
		pgno := binary.BigEndian.Uint32(frame[0:])
		commit := binary.BigEndian.Uint32(frame[4:])
		if pgno == 0 || binary.BigEndian.Uint32(frame[8:]) != hdr.salt1 || binary.BigEndian.Uint32(frame[12:]) != hdr.salt2 {
			break
		}
		sum = walChecksum(hdr.bigEndian, sum, frame[:8])
		sum = walChecksum(hdr.bigEndian, sum, frame[WALFrameHeaderSize:])
		if sum[0] != binary.BigEndian.Uint32(frame[16:]) || sum[1] != binary.BigEndian.Uint32(frame[20:]) {
			seg.broken = off == offset
			break
		}
		pending[pgno] = off
		if commit == 0 {
			continue
		}
		for p, o := range pending {
			seg.pages[p] = o
		}
		clear(pending)
		seg.frames += int((off + hdr.frameSize() - seg.end) / hdr.frameSize())
		seg.end, seg.checksum, seg.commit = off+hdr.frameSize(), sum, commit
		if maxBytes > 0 && seg.end-seg.start >= maxBytes {
			break
		}
	}
	// Pages beyond the final database size were freed by a shrinking
	// transaction (VACUUM, auto-vacuum) and must not be shipped.
	for p := range seg.pages {
		if p > seg.commit {
			delete(seg.pages, p)
		}
	}
	return seg, nil
}

// frameChecksumAt returns the running checksum stored in the header of
// the frame that ends at offset, and whether that frame belongs to the
// WAL generation identified by hdr's salts. It lets a restarted process
// resume scanning in the middle of a WAL.
func frameChecksumAt(r io.ReaderAt, hdr walHeader, offset int64) ([2]uint32, bool, error) {
	if offset == WALHeaderSize {
		return hdr.checksum, true, nil
	}
	var b [WALFrameHeaderSize]byte
	if _, err := r.ReadAt(b[:], offset-hdr.frameSize()); err != nil {
		if errors.Is(err, io.EOF) {
			return [2]uint32{}, false, nil
		}
		return [2]uint32{}, false, fmt.Errorf("read wal frame header: %w", err)
	}
	ok := binary.BigEndian.Uint32(b[8:]) == hdr.salt1 && binary.BigEndian.Uint32(b[12:]) == hdr.salt2 &&
		binary.BigEndian.Uint32(b[4:]) != 0 // a sync always ends on a commit frame
	return [2]uint32{binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])}, ok, nil
}

// errFrameChanged reports a WAL frame that is no longer the one a scan
// found at its offset: another writer restarted the WAL over it.
var errFrameChanged = errors.New("wal frame changed since it was scanned")

// readScannedFrame reads into frame the frame at off that a scan of the
// WAL generation hdr found there, and checks that it still is that frame:
// it carries hdr's salts and continues the checksum chain from the frame
// before it. The page is frame[WALFrameHeaderSize:].
func readScannedFrame(r io.ReaderAt, hdr walHeader, off int64, frame []byte) error {
	seed := hdr.checksum
	if off > WALHeaderSize {
		var prev [8]byte
		if _, err := r.ReadAt(prev[:], off-hdr.frameSize()+16); err != nil {
			return fmt.Errorf("read wal frame header at offset %d: %w", off-hdr.frameSize(), err)
		}
		seed = [2]uint32{binary.BigEndian.Uint32(prev[0:]), binary.BigEndian.Uint32(prev[4:])}
	}
	if _, err := r.ReadAt(frame, off); err != nil {
		return fmt.Errorf("read wal frame at offset %d: %w", off, err)
	}
	sum := walChecksum(hdr.bigEndian, seed, frame[:8])
	sum = walChecksum(hdr.bigEndian, sum, frame[WALFrameHeaderSize:])
	if binary.BigEndian.Uint32(frame[8:]) != hdr.salt1 || binary.BigEndian.Uint32(frame[12:]) != hdr.salt2 ||
		sum[0] != binary.BigEndian.Uint32(frame[16:]) || sum[1] != binary.BigEndian.Uint32(frame[20:]) {
		return fmt.Errorf("offset %d: %w", off, errFrameChanged)
	}
	return nil
}
