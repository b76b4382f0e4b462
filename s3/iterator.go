package s3

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
)

// LTXFiles lists one level lazily: a ListObjectsV2 page is fetched only
// when the previous one is used up. Keys are returned in S3's key order,
// which for fixed-width hex names is ascending (minTXID, maxTXID).
// Listing starts after every key with a minTXID below seek (StartAfter),
// so seeking near the end of a long level costs one request.
//
// With useMetadata, CreatedAt comes from each object's
// litestream-timestamp metadata (parallel HeadObject calls per page);
// otherwise it is the object's LastModified time.
func (c *ReplicaClient) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	api, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	prefix := c.levelPrefix(level)
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.cfg.Bucket), Prefix: aws.String(prefix)}
	if seek > 0 {
		// Every key of a file with minTXID >= seek sorts after
		// "<prefix><seek as 16 hex digits>" (it has that as a prefix,
		// or a larger first hex digits); every smaller minTXID sorts before.
		in.StartAfter = aws.String(prefix + fmt.Sprintf("%016x", uint64(seek)))
	}
	return &fileIterator{
		ctx:         ctx,
		client:      c,
		level:       level,
		prefix:      prefix,
		seek:        seek,
		useMetadata: useMetadata,
		pages:       s3.NewListObjectsV2Paginator(api, in),
		api:         api,
	}, nil
}

type fileIterator struct {
	ctx         context.Context
	client      *ReplicaClient
	api         *s3.Client
	level       int
	prefix      string
	seek        ltx.TXID
	useMetadata bool
	pages       *s3.ListObjectsV2Paginator

	buf    []*ltx.FileInfo // rest of the current page
	item   *ltx.FileInfo
	err    error
	closed bool
}

func (itr *fileIterator) Next() bool {
	for len(itr.buf) == 0 {
		if itr.closed || itr.err != nil || !itr.pages.HasMorePages() {
			return false
		}
		if itr.err = itr.fetchPage(); itr.err != nil {
			return false
		}
	}
	if err := itr.ctx.Err(); err != nil {
		itr.err = err
		return false
	}
	itr.item, itr.buf = itr.buf[0], itr.buf[1:]
	return true
}

func (itr *fileIterator) fetchPage() error {
	page, err := itr.pages.NextPage(itr.ctx)
	if err != nil {
		return itr.client.listError(itr.prefix, err)
	}
	infos := make([]*ltx.FileInfo, 0, len(page.Contents))
	for _, obj := range page.Contents {
		if info := itr.parse(obj); info != nil {
			infos = append(infos, info)
		}
	}
	if itr.useMetadata {
		if infos, err = itr.client.readTimestamps(itr.ctx, itr.api, infos); err != nil {
			return err
		}
	}
	itr.buf = infos
	return nil
}

// parse returns nil for keys that are not LTX files of this level.
func (itr *fileIterator) parse(obj types.Object) *ltx.FileInfo {
	name, ok := strings.CutPrefix(aws.ToString(obj.Key), itr.prefix)
	if !ok {
		return nil
	}
	minTXID, maxTXID, err := ltx.ParseFilename(name)
	if err != nil || minTXID < itr.seek {
		return nil
	}
	return &ltx.FileInfo{
		Level:     itr.level,
		MinTXID:   minTXID,
		MaxTXID:   maxTXID,
		Size:      aws.ToInt64(obj.Size),
		CreatedAt: aws.ToTime(obj.LastModified).UTC(),
	}
}

func (itr *fileIterator) Item() *ltx.FileInfo { return itr.item }
func (itr *fileIterator) Err() error          { return itr.err }

func (itr *fileIterator) Close() error {
	itr.closed = true
	itr.buf = nil
	return nil
}

// readTimestamps replaces each CreatedAt with the object's
// litestream-timestamp metadata, with at most MetadataConcurrency
// HeadObject calls in flight. Objects deleted since the listing are
// dropped; objects without the metadata keep LastModified.
func (c *ReplicaClient) readTimestamps(ctx context.Context, api *s3.Client, infos []*ltx.FileInfo) ([]*ltx.FileInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		gone     = make([]bool, len(infos))
		sem      = make(chan struct{}, c.cfg.MetadataConcurrency)
	)
	for i, info := range infos {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t, exists, err := c.headTimestamp(ctx, api, info)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
				cancel()
			case err == nil && !exists:
				gone[i] = true
			case err == nil && !t.IsZero():
				info.CreatedAt = t
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	kept := infos[:0]
	for i, info := range infos {
		if !gone[i] {
			kept = append(kept, info)
		}
	}
	return kept, nil
}

// headTimestamp returns the zero time when the object has no (valid)
// timestamp metadata, and exists=false when it is gone.
func (c *ReplicaClient) headTimestamp(ctx context.Context, api *s3.Client, info *ltx.FileInfo) (t time.Time, exists bool, err error) {
	key := c.key(info.Level, info.MinTXID, info.MaxTXID)
	in := &s3.HeadObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key)}
	if sse := c.cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	}
	out, err := api.HeadObject(ctx, in)
	if isNotExist(err) {
		return time.Time{}, false, nil
	} else if err != nil {
		return time.Time{}, false, c.opError("HeadObject", key, err)
	}
	for k, v := range out.Metadata {
		if strings.EqualFold(k, MetadataKeyTimestamp) {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return t.UTC(), true, nil
			}
		}
	}
	return time.Time{}, true, nil
}
