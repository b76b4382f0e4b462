package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/sqlitebackup/litestream"
)

// Reading Litestream v0.3 backups, for restore. v0.3 kept them under the
// same key prefix:
//
//	<path>/generations/<gen>/snapshots/<index %08x>.snapshot.lz4
//	<path>/generations/<gen>/wal/<index %08x>_<offset %08x>.wal.lz4
//
// (generations/... at the bucket root for an empty path). v0.3 had no
// SSE-C setting, so these objects are read without SSE-C headers, which
// S3 refuses for unencrypted objects.

var _ litestream.ReplicaClientV3 = (*ReplicaClient)(nil)

// GenerationsV3 lists the v0.3 generations, in ascending order, with a
// delimited listing of <path>/generations/.
func (c *ReplicaClient) GenerationsV3(ctx context.Context) ([]string, error) {
	prefix := litestream.V3GenerationsDir(c.cfg.Path) + "/"
	var gens []string
	err := c.listV3(ctx, prefix, func(page *s3.ListObjectsV2Output) {
		for _, p := range page.CommonPrefixes {
			name, _ := strings.CutPrefix(aws.ToString(p.Prefix), prefix)
			if name = strings.TrimSuffix(name, "/"); litestream.IsV3Generation(name) {
				gens = append(gens, name)
			}
		}
	})
	return gens, err
}

// SnapshotsV3 lists a generation's snapshots by index; CreatedAt is the
// object's LastModified time.
func (c *ReplicaClient) SnapshotsV3(ctx context.Context, generation string) ([]litestream.V3Snapshot, error) {
	var snaps []litestream.V3Snapshot
	prefix := litestream.V3SnapshotsDir(c.cfg.Path, generation) + "/"
	err := c.listV3Objects(ctx, prefix, func(name string, obj types.Object) {
		if index, err := litestream.ParseV3SnapshotName(name); err == nil {
			snaps = append(snaps, litestream.V3Snapshot{
				Generation: generation,
				Index:      index,
				Size:       aws.ToInt64(obj.Size),
				CreatedAt:  aws.ToTime(obj.LastModified).UTC(),
			})
		}
	})
	// Keys sort by index already (fixed-width hex names).
	return snaps, err
}

// WALSegmentsV3 lists a generation's WAL segments by index and offset.
func (c *ReplicaClient) WALSegmentsV3(ctx context.Context, generation string) ([]litestream.V3WALSegment, error) {
	var segs []litestream.V3WALSegment
	prefix := litestream.V3WALDir(c.cfg.Path, generation) + "/"
	err := c.listV3Objects(ctx, prefix, func(name string, obj types.Object) {
		if index, offset, err := litestream.ParseV3WALSegmentName(name); err == nil {
			segs = append(segs, litestream.V3WALSegment{
				Generation: generation,
				Index:      index,
				Offset:     offset,
				Size:       aws.ToInt64(obj.Size),
				CreatedAt:  aws.ToTime(obj.LastModified).UTC(),
			})
		}
	})
	// Offsets past 4 GiB have wider names, so key order is not enough.
	litestream.SortV3WALSegments(segs)
	return segs, err
}

// listV3Objects calls fn with the name (the key without prefix) of every
// object directly under prefix; deeper keys are left out, as the file
// backend skips subdirectories.
func (c *ReplicaClient) listV3Objects(ctx context.Context, prefix string, fn func(name string, obj types.Object)) error {
	return c.listV3(ctx, prefix, func(page *s3.ListObjectsV2Output) {
		for _, obj := range page.Contents {
			if name, ok := strings.CutPrefix(aws.ToString(obj.Key), prefix); ok && name != "" {
				fn(name, obj)
			}
		}
	})
}

// listV3 runs a delimited ("/") listing of prefix page by page. A prefix
// without objects is an empty listing, not an error.
func (c *ReplicaClient) listV3(ctx context.Context, prefix string, fn func(page *s3.ListObjectsV2Output)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	api, err := c.client(ctx)
	if err != nil {
		return err
	}
	pages := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{
		Bucket:    aws.String(c.cfg.Bucket),
		Prefix:    aws.String(prefix),
		Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return c.listError(prefix, err)
		}
		fn(page)
	}
	return nil
}

// OpenSnapshotV3 opens a snapshot's stored (LZ4) bytes.
func (c *ReplicaClient) OpenSnapshotV3(ctx context.Context, generation string, index int) (io.ReadCloser, error) {
	return c.openV3(ctx, litestream.V3SnapshotPath(c.cfg.Path, generation, index))
}

// OpenWALSegmentV3 opens a WAL segment's stored (LZ4) bytes, whichever
// way its offset is padded.
func (c *ReplicaClient) OpenWALSegmentV3(ctx context.Context, generation string, index int, offset int64) (io.ReadCloser, error) {
	key := litestream.V3WALSegmentPath(c.cfg.Path, generation, index, offset)
	rc, err := c.openV3(ctx, key)
	wide := litestream.V3WALSegmentPathWide(c.cfg.Path, generation, index, offset)
	if !errors.Is(err, os.ErrNotExist) || wide == key {
		return rc, err
	}
	rc, wideErr := c.openV3(ctx, wide)
	if errors.Is(wideErr, os.ErrNotExist) {
		return nil, err // the error naming the usual key
	}
	return rc, wideErr
}

func (c *ReplicaClient) openV3(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	api, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.cfg.Bucket), Key: aws.String(key)})
	switch {
	case err == nil:
		return out.Body, nil
	case isNotExist(err):
		return nil, c.opError("GetObject", key, fmt.Errorf("%w: %w", os.ErrNotExist, err))
	default:
		return nil, c.opError("GetObject", key, err)
	}
}
