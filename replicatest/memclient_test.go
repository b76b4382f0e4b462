package replicatest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/superfly/ltx"
)

// memClient is the in-memory backend of docs/REPLICA_CLIENT.md, plus
// switches that break one rule each, to show that the suite notices.
type memClient struct {
	mu    sync.Mutex
	files map[memKey]memFile
	bug   string
}

type memKey struct {
	level            int
	minTXID, maxTXID ltx.TXID
}

type memFile struct {
	data    []byte
	created time.Time
}

func newMemClient(bug string) *memClient {
	return &memClient{files: make(map[memKey]memFile), bug: bug}
}

func (c *memClient) Type() string { return "mem" }

func (c *memClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil && c.bug != "ignore-ctx" {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var a []*ltx.FileInfo
	for k, f := range c.files {
		inLevel := k.level == level || c.bug == "all-levels"
		wanted := k.minTXID >= seek || (c.bug == "seek-contains" && k.maxTXID >= seek)
		if c.bug == "seek-exact" {
			wanted = seek == 0 || k.minTXID == seek
		}
		if inLevel && wanted {
			a = append(a, &ltx.FileInfo{Level: k.level, MinTXID: k.minTXID, MaxTXID: k.maxTXID,
				Size: int64(len(f.data)), CreatedAt: f.created})
		}
	}
	if c.bug == "first-page-only" && len(a) > 1000 {
		sort.Slice(a, func(i, j int) bool { return a[i].MinTXID < a[j].MinTXID })
		a = a[:1000]
	}
	if c.bug == "unsorted" {
		sort.Slice(a, func(i, j int) bool { return a[i].MinTXID > a[j].MinTXID })
		return &plainIterator{a: a}, nil // NewFileInfoSliceIterator would sort
	}
	return ltx.NewFileInfoSliceIterator(a), nil
}

// plainIterator returns its slice as is.
type plainIterator struct {
	a []*ltx.FileInfo
	i int
}

func (it *plainIterator) Next() bool          { it.i++; return it.i <= len(it.a) }
func (it *plainIterator) Item() *ltx.FileInfo { return it.a[it.i-1] }
func (it *plainIterator) Err() error          { return nil }
func (it *plainIterator) Close() error        { return nil }

func (c *memClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil && c.bug != "ignore-ctx" {
		return nil, err
	}
	c.mu.Lock()
	f, ok := c.files[memKey{level, minTXID, maxTXID}]
	c.mu.Unlock()
	if !ok {
		if c.bug == "plain-not-found" {
			return nil, fmt.Errorf("mem: level %d file %s: not found", level, ltx.FormatFilename(minTXID, maxTXID))
		}
		return nil, fmt.Errorf("mem: level %d file %s: %w", level, ltx.FormatFilename(minTXID, maxTXID), os.ErrNotExist)
	}
	b := f.data[min(offset, int64(len(f.data))):]
	if size > 0 && size < int64(len(b)) {
		b = b[:size]
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (c *memClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, fmt.Errorf("mem: read header: %w", err)
	}
	created := time.UnixMilli(hdr.Timestamp).UTC()
	if c.bug == "upload-time" {
		created = time.Now().UTC()
	}
	k := memKey{level, minTXID, maxTXID}
	var buf bytes.Buffer
	for {
		if err := ctx.Err(); err != nil && c.bug != "ignore-ctx" {
			return nil, err
		}
		n, err := io.CopyN(&buf, r, 16<<10)
		if c.bug == "not-atomic" && n > 0 { // publish every partial state
			c.mu.Lock()
			c.files[k] = memFile{bytes.Clone(buf.Bytes()), created}
			c.mu.Unlock()
		}
		if err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.files[k] = memFile{buf.Bytes(), created}
	c.mu.Unlock()
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: int64(buf.Len()), CreatedAt: created}, nil
}

func (c *memClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if err := ctx.Err(); err != nil && c.bug != "ignore-ctx" {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, info := range a {
		if _, ok := c.files[memKey{info.Level, info.MinTXID, info.MaxTXID}]; !ok && c.bug == "delete-missing-fails" {
			return fmt.Errorf("mem: delete %s: %w", ltx.FormatFilename(info.MinTXID, info.MaxTXID), os.ErrNotExist)
		}
		delete(c.files, memKey{info.Level, info.MinTXID, info.MaxTXID})
	}
	return nil
}

func (c *memClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil && c.bug != "ignore-ctx" {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.files)
	return nil
}
