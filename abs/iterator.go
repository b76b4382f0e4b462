package abs

import (
	"context"
	"path"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/superfly/ltx"
)

// fileIterator walks one level's listing, fetching a page only when the
// previous one is used up.
type fileIterator struct {
	ctx    context.Context
	client *ReplicaClient
	level  int
	seek   ltx.TXID
	prefix string
	pager  *runtime.Pager[container.ListBlobsFlatResponse]

	page   []*ltx.FileInfo
	item   *ltx.FileInfo
	err    error
	closed bool
}

// fetch loads the next non-empty page into it.page; it reports false at
// the end of the listing or on error (then it.err is set).
func (it *fileIterator) fetch() bool {
	for len(it.page) == 0 {
		if !it.pager.More() {
			return false
		}
		resp, err := it.pager.NextPage(it.ctx)
		if err != nil {
			it.err = it.client.errorf("list", it.prefix, err)
			return false
		}
		if resp.Segment == nil {
			continue
		}
		for _, item := range resp.Segment.BlobItems {
			if info := it.fileInfo(item); info != nil {
				it.page = append(it.page, info)
			}
		}
	}
	return true
}

// fileInfo converts a listed blob, or returns nil for blobs that are not
// LTX files of this level at or after seek.
func (it *fileIterator) fileInfo(item *container.BlobItem) *ltx.FileInfo {
	if item == nil || item.Name == nil || path.Dir(*item.Name)+"/" != it.prefix {
		return nil
	}
	minTXID, maxTXID, err := ltx.ParseFilename(path.Base(*item.Name))
	if err != nil || minTXID < it.seek {
		return nil
	}
	info := &ltx.FileInfo{Level: it.level, MinTXID: minTXID, MaxTXID: maxTXID, CreatedAt: createdAt(item)}
	if item.Properties != nil && item.Properties.ContentLength != nil {
		info.Size = *item.Properties.ContentLength
	}
	return info
}

// createdAt prefers the LTX timestamp stored in metadata; blobs written
// by other tools fall back to the blob's creation (or modification) time.
// Azure treats metadata names case-insensitively, so match them that way.
func createdAt(item *container.BlobItem) time.Time {
	for k, v := range item.Metadata {
		if v == nil || !strings.EqualFold(k, MetadataKeyTimestamp) {
			continue
		}
		if t, err := time.Parse(time.RFC3339Nano, *v); err == nil {
			return t.UTC()
		}
	}
	if p := item.Properties; p != nil {
		if p.CreationTime != nil {
			return p.CreationTime.UTC()
		}
		if p.LastModified != nil {
			return p.LastModified.UTC()
		}
	}
	return time.Time{}
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
