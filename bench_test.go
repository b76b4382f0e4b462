package litestream

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// syntheticWAL builds a valid little-endian WAL in memory: frames of
// pageSize bytes cycling over distinctPages page numbers, a commit every
// txFrames frames. Building it is a few milliseconds, no SQLite needed.
func syntheticWAL(frames, txFrames int, pageSize uint32, distinctPages uint32) ([]byte, walHeader) {
	b := make([]byte, WALHeaderSize, WALHeaderSize+frames*(WALFrameHeaderSize+int(pageSize)))
	binary.BigEndian.PutUint32(b[0:], walMagicLE)
	binary.BigEndian.PutUint32(b[4:], walVersion)
	binary.BigEndian.PutUint32(b[8:], pageSize)
	binary.BigEndian.PutUint32(b[12:], 1)          // checkpoint sequence
	binary.BigEndian.PutUint32(b[16:], 0x1234abcd) // salts
	binary.BigEndian.PutUint32(b[20:], 0x5678ef01)
	sum := walChecksum(false, [2]uint32{}, b[:24])
	binary.BigEndian.PutUint32(b[24:], sum[0])
	binary.BigEndian.PutUint32(b[28:], sum[1])
	hdr, err := parseWALHeader(b)
	if err != nil {
		panic(err)
	}
	frame := make([]byte, WALFrameHeaderSize+int(pageSize))
	for i := 0; i < frames; i++ {
		pgno := uint32(i)%distinctPages + 1
		var commit uint32
		if (i+1)%txFrames == 0 || i == frames-1 {
			commit = distinctPages
		}
		binary.BigEndian.PutUint32(frame[0:], pgno)
		binary.BigEndian.PutUint32(frame[4:], commit)
		binary.BigEndian.PutUint32(frame[8:], hdr.salt1)
		binary.BigEndian.PutUint32(frame[12:], hdr.salt2)
		for j := WALFrameHeaderSize; j < len(frame); j += 8 {
			binary.LittleEndian.PutUint64(frame[j:], uint64(i)*0x9e3779b97f4a7c15^uint64(j))
		}
		sum = walChecksum(false, sum, frame[:8])
		sum = walChecksum(false, sum, frame[WALFrameHeaderSize:])
		binary.BigEndian.PutUint32(frame[16:], sum[0])
		binary.BigEndian.PutUint32(frame[20:], sum[1])
		b = append(b, frame...)
	}
	return b, hdr
}

// BenchmarkScanWAL measures reading and validating committed WAL frames
// (checksums, salts, the page map), the first step of every sync.
func BenchmarkScanWAL(b *testing.B) {
	for _, bc := range []struct {
		name                    string
		frames, txFrames, pages int
	}{
		{"4MB-one-row-txns", 1024, 2, 64},      // many small commits on a few hot pages
		{"64MB-bulk-txns", 16384, 2560, 16384}, // large transactions, every page distinct
	} {
		b.Run(bc.name, func(b *testing.B) {
			wal, hdr := syntheticWAL(bc.frames, bc.txFrames, 4096, uint32(bc.pages))
			b.ReportAllocs()
			b.SetBytes(int64(len(wal)))
			r := bytes.NewReader(wal)
			for b.Loop() {
				seg, err := scanWAL(r, int64(len(wal)), hdr, WALHeaderSize, hdr.checksum, 0)
				if err != nil {
					b.Fatal(err)
				}
				if seg.end != int64(len(wal)) {
					b.Fatalf("scan ended at %d of %d", seg.end, len(wal))
				}
			}
		})
	}
}
