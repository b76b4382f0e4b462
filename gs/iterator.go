package gs

import (
	"context"
	"path"
	"time"

	"github.com/superfly/ltx"
)

// pager fetches an object listing one page per call.
type pager struct {
	ctx         context.Context
	client      *ReplicaClient
	prefix      string
	startOffset string

	token string
	done  bool
}

// next returns the next page and whether it was the last one.
func (p *pager) next() (objs []objectMeta, done bool, err error) {
	if p.done {
		return nil, true, nil
	}
	page, err := p.client.list(p.ctx, p.prefix, p.startOffset, p.token)
	if err != nil {
		return nil, false, err
	}
	p.token = page.NextPageToken
	p.done = p.token == ""
	return page.Items, p.done, nil
}

// fileIterator walks one level's listing, fetching a page only when the
// previous one is used up.
type fileIterator struct {
	client *ReplicaClient
	level  int
	seek   ltx.TXID
	prefix string
	pager  *pager

	page   []*ltx.FileInfo
	item   *ltx.FileInfo
	err    error
	closed bool
}

// fetch loads the next non-empty page into it.page; it reports false at
// the end of the listing or on error (then it.err is set).
func (it *fileIterator) fetch() bool {
	for len(it.page) == 0 {
		if it.pager.done {
			return false
		}
		objs, _, err := it.pager.next()
		if err != nil {
			it.err = it.client.errorf("list", it.prefix, err)
			return false
		}
		for i := range objs {
			if info := it.fileInfo(&objs[i]); info != nil {
				it.page = append(it.page, info)
			}
		}
	}
	return true
}

// fileInfo converts a listed object, or returns nil for objects that are
// not LTX files of this level at or after seek.
func (it *fileIterator) fileInfo(o *objectMeta) *ltx.FileInfo {
	if o.Name == "" || path.Dir(o.Name)+"/" != it.prefix {
		return nil // a "directory" prefix or a nested key
	}
	minTXID, maxTXID, err := ltx.ParseFilename(path.Base(o.Name))
	if err != nil || minTXID < it.seek {
		return nil
	}
	return &ltx.FileInfo{
		Level:     it.level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      o.Size,
		CreatedAt: createdAt(o),
	}
}

// createdAt prefers the LTX timestamp stored in metadata; objects written
// by other tools fall back to the object's creation time.
func createdAt(o *objectMeta) time.Time {
	if s, ok := o.Metadata[MetadataKeyTimestamp]; ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UTC()
		}
	}
	t, _ := time.Parse(time.RFC3339Nano, o.TimeCreated)
	return t.UTC()
}

func (it *fileIterator) Next() bool {
	if it.closed || it.err != nil || !it.fetch() {
		it.item = nil
		return false
	}
	it.item, it.page = it.page[0], it.page[1:]
	return true
}

func (it *fileIterator) Item() *ltx.FileInfo { return it.item }

func (it *fileIterator) Err() error { return it.err }

func (it *fileIterator) Close() error {
	it.closed = true
	it.page = nil
	return nil
}
