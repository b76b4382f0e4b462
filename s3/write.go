package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
)

// maxParts is S3's limit on the parts of one multipart upload.
const maxParts = 10000

// WriteLTXFile uploads a file read from r. A file smaller than the part
// size goes in one PutObject with a known Content-Length; a larger one in
// a multipart upload with up to Concurrency parts in flight. Either way
// the object appears atomically under its final key, with the LTX header
// timestamp in its litestream-timestamp metadata.
func (c *ReplicaClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	api, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	key := c.key(level, minTXID, maxTXID)
	hdr, r, err := ltx.PeekHeader(r)
	if err != nil {
		return nil, c.opError("read LTX header for", key, err)
	}
	createdAt := time.UnixMilli(hdr.Timestamp).UTC()
	up := &upload{c: c, api: api, key: key, meta: map[string]string{
		MetadataKeyTimestamp: createdAt.Format(time.RFC3339Nano),
	}}
	first, full, err := readFirstPart(r, c.cfg.PartSize)
	if err != nil {
		return nil, c.opError("read data for", key, err)
	}
	var n int64
	if !full {
		n, err = up.put(ctx, first)
	} else {
		n, err = up.multipart(ctx, first, r)
	}
	if err != nil {
		return nil, err
	}
	return &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: n, CreatedAt: createdAt}, nil
}

// readFirstPart is readPart for the first part: it grows its buffer as
// data arrives, since most files are far smaller than a part.
func readFirstPart(r io.Reader, size int64) (buf []byte, full bool, err error) {
	var b bytes.Buffer
	n, err := io.CopyN(&b, r, size)
	switch {
	case err == nil:
		return b.Bytes(), true, nil
	case errors.Is(err, io.EOF):
		return b.Bytes()[:n], false, nil
	default:
		return nil, false, err
	}
}

// readPart reads up to size bytes; full reports that size bytes were read
// (so more may follow).
func readPart(r io.Reader, size int64) (buf []byte, full bool, err error) {
	buf = make([]byte, size)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == nil:
		return buf, true, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return buf[:n], false, nil
	default:
		return nil, false, err
	}
}

type upload struct {
	c    *ReplicaClient
	api  *s3.Client
	key  string
	meta map[string]string
}

func (u *upload) put(ctx context.Context, data []byte) (int64, error) {
	cfg := u.c.cfg
	in := &s3.PutObjectInput{
		Bucket:        aws.String(cfg.Bucket),
		Key:           aws.String(u.key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		Metadata:      u.meta,
	}
	if cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(cfg.StorageClass)
	}
	if sse := cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	} else if cfg.SSEKMSKeyID != "" {
		in.ServerSideEncryption, in.SSEKMSKeyId = types.ServerSideEncryptionAwsKms, aws.String(cfg.SSEKMSKeyID)
	}
	if _, err := u.api.PutObject(ctx, in); err != nil {
		return 0, u.c.opError("PutObject", u.key, err)
	}
	return int64(len(data)), nil
}

// multipart uploads first and the rest of r in parts. On any failure the
// upload is aborted so no orphaned parts are billed.
func (u *upload) multipart(ctx context.Context, first []byte, r io.Reader) (int64, error) {
	cfg := u.c.cfg
	in := &s3.CreateMultipartUploadInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(u.key), Metadata: u.meta}
	if cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(cfg.StorageClass)
	}
	if sse := cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	} else if cfg.SSEKMSKeyID != "" {
		in.ServerSideEncryption, in.SSEKMSKeyId = types.ServerSideEncryptionAwsKms, aws.String(cfg.SSEKMSKeyID)
	}
	if cfg.fullChecksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := u.api.CreateMultipartUpload(ctx, in)
	if err != nil {
		return 0, u.c.opError("CreateMultipartUpload", u.key, err)
	}
	uploadID := out.UploadId
	parts, n, err := u.uploadParts(ctx, uploadID, first, r)
	if err == nil {
		err = u.complete(ctx, uploadID, parts)
	}
	if err != nil {
		u.abort(uploadID)
		return 0, err
	}
	return n, nil
}

func (u *upload) complete(ctx context.Context, uploadID *string, parts []types.CompletedPart) error {
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.c.cfg.Bucket),
		Key:             aws.String(u.key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if sse := u.c.cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	}
	if _, err := u.api.CompleteMultipartUpload(ctx, in); err != nil {
		return u.c.opError("CompleteMultipartUpload", u.key, err)
	}
	return nil
}

// abort runs even when ctx was cancelled: the parts must not linger.
func (u *upload) abort(uploadID *string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = u.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.c.cfg.Bucket), Key: aws.String(u.key), UploadId: uploadID,
	})
}

// uploadParts reads parts sequentially from r and sends up to Concurrency
// of them at once; memory use is bounded by (Concurrency+1) parts.
func (u *upload) uploadParts(ctx context.Context, uploadID *string, first []byte, r io.Reader) ([]types.CompletedPart, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		parts    []types.CompletedPart
		firstErr error
		total    int64
		sem      = make(chan struct{}, u.c.cfg.Concurrency)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	buf, full := first, true
	for num := int32(1); len(buf) > 0; num++ {
		if num > maxParts {
			fail(u.c.opError("UploadPart", u.key, fmt.Errorf("file needs more than %d parts of %d bytes: raise part-size", maxParts, u.c.cfg.PartSize)))
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			fail(ctx.Err())
			break
		}
		total += int64(len(buf))
		wg.Add(1)
		go func(num int32, data []byte) {
			defer func() { <-sem; wg.Done() }()
			part, err := u.uploadPart(ctx, uploadID, num, data)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			parts = append(parts, part)
			mu.Unlock()
		}(num, buf)
		if !full {
			break
		}
		var err error
		if buf, full, err = readPart(r, u.c.cfg.PartSize); err != nil {
			fail(u.c.opError("read data for", u.key, err))
			break
		}
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return parts, total, nil
}

func (u *upload) uploadPart(ctx context.Context, uploadID *string, num int32, data []byte) (types.CompletedPart, error) {
	in := &s3.UploadPartInput{
		Bucket:        aws.String(u.c.cfg.Bucket),
		Key:           aws.String(u.key),
		UploadId:      uploadID,
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if sse := u.c.cfg.sse; sse != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = &sse.algorithm, &sse.key, &sse.keyMD5
	}
	if u.c.cfg.fullChecksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	out, err := u.api.UploadPart(ctx, in)
	if err != nil {
		return types.CompletedPart{}, u.c.opError(fmt.Sprintf("UploadPart %d of", num), u.key, err)
	}
	return types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}, nil
}
