package replicatest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/superfly/ltx"
)

// PageSize is the page size of the files NewLTXFile builds.
const PageSize = 4096

// NewLTXFile returns a complete, valid LTX file for TXIDs minTXID..maxTXID
// whose header timestamp is ts (kept to the millisecond, as the format
// does). It holds pages 1..pages (Commit = pages) of 4096 bytes each, filled
// with pseudo-random bytes derived from the TXIDs and the page number: the
// same arguments always give the same file, and the pages do not compress,
// so pages*4 KiB is roughly the file's size. The header carries
// ltx.HeaderFlagNoChecksum with zero database checksums, as every file
// Litestream writes does.
//
// pages must be at least 1 (the format cannot encode an empty database
// with the no-checksum flag). NewLTXFile panics on invalid arguments: it is
// a test helper and a bad call is a bug in the test.
func NewLTXFile(minTXID, maxTXID ltx.TXID, ts time.Time, pages int) []byte {
	b, err := encodeLTXFile(minTXID, maxTXID, ts, pages)
	if err != nil {
		panic(fmt.Sprintf("replicatest.NewLTXFile(%s, %s, %d pages): %v", minTXID, maxTXID, pages, err))
	}
	return b
}

func encodeLTXFile(minTXID, maxTXID ltx.TXID, ts time.Time, pages int) ([]byte, error) {
	if pages < 1 || pages >= int(ltx.LockPgno(PageSize)) {
		return nil, fmt.Errorf("pages must be in 1..%d", ltx.LockPgno(PageSize)-1)
	}
	var buf bytes.Buffer
	buf.Grow(pages*(PageSize+32) + 1024)
	enc, err := ltx.NewEncoder(&buf)
	if err != nil {
		return nil, err
	}
	if err := enc.EncodeHeader(ltx.Header{
		Version:   ltx.Version,
		Flags:     ltx.HeaderFlagNoChecksum,
		PageSize:  PageSize,
		Commit:    uint32(pages),
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Timestamp: ts.UnixMilli(),
	}); err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	page := make([]byte, PageSize)
	for pgno := uint32(1); pgno <= uint32(pages); pgno++ {
		fillPage(page, minTXID, maxTXID, pgno)
		if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, page); err != nil {
			return nil, fmt.Errorf("encode page %d: %w", pgno, err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("close encoder: %w", err)
	}
	return buf.Bytes(), nil
}

// fillPage fills page with bytes that depend on the file and the page
// number, so two files of the same size still differ in every page.
func fillPage(page []byte, minTXID, maxTXID ltx.TXID, pgno uint32) {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[0:], uint64(minTXID))
	binary.BigEndian.PutUint64(seed[8:], uint64(maxTXID))
	binary.BigEndian.PutUint32(seed[16:], pgno)
	rng := rand.NewChaCha8(seed)
	_, _ = rng.Read(page) // ChaCha8.Read never fails
}
