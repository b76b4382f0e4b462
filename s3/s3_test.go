package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

var testTime = time.Date(2001, time.February, 3, 4, 5, 6, 789_000_000, time.UTC)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func write(t *testing.T, ctx context.Context, c *ReplicaClient, level int, data []byte) *ltx.FileInfo {
	t.Helper()
	var hdr ltx.Header
	if err := hdr.UnmarshalBinary(data[:ltx.HeaderSize]); err != nil {
		t.Fatal(err)
	}
	info, err := c.WriteLTXFile(ctx, level, hdr.MinTXID, hdr.MaxTXID, io.MultiReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatalf("WriteLTXFile: %v", err)
	}
	return info
}

func readAll(t *testing.T, ctx context.Context, c *ReplicaClient, level int, minTXID, maxTXID ltx.TXID, offset, size int64) []byte {
	t.Helper()
	rc, err := c.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		t.Fatalf("OpenLTXFile: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// Keys follow Litestream v0.5's S3 layout: <path>/<level %04x>/<min>-<max>.ltx.
func TestKeyLayout(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		write(t, ctx, c, 0, replicatest.NewLTXFile(1, 1, testTime, 1))
		write(t, ctx, c, litestream.SnapshotLevel, replicatest.NewLTXFile(1, 0x1a, testTime, 1))
		write(t, ctx, c, 10, replicatest.NewLTXFile(0x1b, 0x2c, testTime, 1))
		got := rawKeys(t, ctx, srv.rawClient(), c.Bucket(), c.Path()+"/")
		want := []string{
			c.Path() + "/0000/0000000000000001-0000000000000001.ltx",
			c.Path() + "/0009/0000000000000001-000000000000001a.ltx",
			c.Path() + "/000a/000000000000001b-000000000000002c.ltx",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// An empty path puts the level directories at the bucket root, and
// DeleteAll removes only those, not the rest of the bucket.
func TestEmptyPath(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		api := srv.rawClient()
		bucket := "s3test-" + randomHex(t, 6)
		if _, err := api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatalf("CreateBucket: %v", err)
		}
		t.Cleanup(func() { deleteBucket(t, api, bucket) })
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("other/file"), Body: strings.NewReader("x")}); err != nil {
			t.Fatal(err)
		}
		cfg := srv.config("")
		cfg.Bucket = bucket
		c, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		data := replicatest.NewLTXFile(1, 1, testTime, 1)
		write(t, ctx, c, 0, data)
		if got := rawKeys(t, ctx, api, bucket, ""); strings.Join(got, ",") != "0000/0000000000000001-0000000000000001.ltx,other/file" {
			t.Fatalf("keys %v", got)
		}
		if !bytes.Equal(readAll(t, ctx, c, 0, 1, 1, 0, 0), data) {
			t.Fatal("read back differs")
		}
		if err := c.DeleteAll(ctx); err != nil {
			t.Fatal(err)
		}
		if got := rawKeys(t, ctx, api, bucket, ""); strings.Join(got, ",") != "other/file" {
			t.Fatalf("after DeleteAll: keys %v", got)
		}
	})
}

func deleteBucket(t *testing.T, api *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, k := range rawKeys(t, ctx, api, bucket, "") {
		if _, err := api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(k)}); err != nil {
			t.Errorf("delete %s: %v", k, err)
		}
	}
	if _, err := api.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Errorf("DeleteBucket: %v", err)
	}
}

// The header timestamp is stored as litestream-timestamp metadata and
// read back with useMetadata; without it, CreatedAt is LastModified.
func TestMetadataTimestamp(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		before := time.Now().Add(-time.Minute)
		info := write(t, ctx, c, 0, replicatest.NewLTXFile(1, 1, testTime, 1))
		if !info.CreatedAt.Equal(testTime) {
			t.Fatalf("WriteLTXFile CreatedAt %v, want %v", info.CreatedAt, testTime)
		}
		api := srv.rawClient()
		// A file some other tool wrote, without the metadata.
		foreign := c.key(0, 2, 2)
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.Bucket()), Key: &foreign,
			Body: bytes.NewReader(replicatest.NewLTXFile(2, 2, testTime, 1))}); err != nil {
			t.Fatal(err)
		}

		head, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(c.Bucket()), Key: aws.String(c.key(0, 1, 1))})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := head.Metadata[MetadataKeyTimestamp], "2001-02-03T04:05:06.789Z"; got != want {
			t.Fatalf("metadata %q = %q, want %q (all: %v)", MetadataKeyTimestamp, got, want, head.Metadata)
		}

		withMeta, err := litestream.LTXFileInfos(ctx, c, 0, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(withMeta) != 2 || !withMeta[0].CreatedAt.Equal(testTime) || withMeta[1].CreatedAt.Before(before) {
			t.Fatalf("useMetadata: %v", withMeta)
		}
		plain, err := litestream.LTXFileInfos(ctx, c, 0, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) != 2 || plain[0].CreatedAt.Before(before) {
			t.Fatalf("LastModified expected without useMetadata: %v", plain)
		}
	})
}

// Names that are not LTX files of the level are skipped.
func TestListIgnoresForeignKeys(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		data := replicatest.NewLTXFile(3, 3, testTime, 1)
		write(t, ctx, c, 0, data)
		api := srv.rawClient()
		for _, k := range []string{
			"0000/junk.txt",
			"0000/0000000000000001-0000000000000001.ltx.tmp",
			"0000/000000000000000A-000000000000000A.ltx",
			"0000/sub/0000000000000002-0000000000000002.ltx",
			"00000/0000000000000004-0000000000000004.ltx",
		} {
			if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.Bucket()), Key: aws.String(c.Path() + "/" + k),
				Body: strings.NewReader("x")}); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
		}
		for _, useMetadata := range []bool{false, true} {
			got, err := litestream.LTXFileInfos(ctx, c, 0, 0, useMetadata)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].MinTXID != 3 || got[0].Size != int64(len(data)) {
				t.Fatalf("useMetadata=%v: %v", useMetadata, got)
			}
		}
	})
}

// A file of at least the part size goes up as a multipart upload and
// keeps its metadata.
func TestMultipartUpload(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		for _, aws := range []bool{false, true} {
			t.Run(fmt.Sprintf("fullChecksums=%v", aws), func(t *testing.T) {
				ctx := testCtx(t)
				c := newTestClient(t, srv, func(cfg *Config) { cfg.Concurrency = 2 })
				if aws {
					c.cfg.fullChecksums = true
					c.rebuildAPI()
				}
				ops := countOps(c)
				data := replicatest.NewLTXFile(1, 50, testTime, (2*MinPartSize+MinPartSize/2)/replicatest.PageSize) // 3 parts
				info := write(t, ctx, c, litestream.SnapshotLevel, data)
				if info.Size != int64(len(data)) {
					t.Fatalf("size %d, want %d", info.Size, len(data))
				}
				if n := ops.get("UploadPart"); n != 3 || ops.get("PutObject") != 0 || ops.get("CompleteMultipartUpload") != 1 {
					t.Fatalf("UploadPart %d, PutObject %d, Complete %d", n, ops.get("PutObject"), ops.get("CompleteMultipartUpload"))
				}
				if got := readAll(t, ctx, c, litestream.SnapshotLevel, 1, 50, 0, 0); !bytes.Equal(got, data) {
					t.Fatal("read back differs")
				}
				off := int64(MinPartSize - 10)
				if got := readAll(t, ctx, c, litestream.SnapshotLevel, 1, 50, off, 20); !bytes.Equal(got, data[off:off+20]) {
					t.Fatal("range across the part boundary differs")
				}
				infos, err := litestream.LTXFileInfos(ctx, c, litestream.SnapshotLevel, 0, true)
				if err != nil || len(infos) != 1 || !infos[0].CreatedAt.Equal(testTime) || infos[0].Size != int64(len(data)) {
					t.Fatalf("listing %v, %v", infos, err)
				}
				// Small files still use one PutObject.
				write(t, ctx, c, 0, replicatest.NewLTXFile(1, 1, testTime, 1))
				if ops.get("PutObject") != 1 || ops.get("CreateMultipartUpload") != 1 {
					t.Fatalf("PutObject %d CreateMultipartUpload %d", ops.get("PutObject"), ops.get("CreateMultipartUpload"))
				}
			})
		}
	})
}

// A failing multipart upload is aborted: no object, no pending upload.
func TestMultipartAbort(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		data := replicatest.NewLTXFile(1, 2, testTime, (MinPartSize+MinPartSize/2)/replicatest.PageSize)
		boom := errors.New("source failed")
		r := io.MultiReader(bytes.NewReader(data[:MinPartSize+100]), errReader{boom})
		_, err := c.WriteLTXFile(ctx, 0, 1, 2, r)
		if !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
		if _, err := c.OpenLTXFile(ctx, 0, 1, 2, 0, 0); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after a failed upload: %v", err)
		}
		out, err := srv.rawClient().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(c.Bucket()), Prefix: aws.String(c.Path() + "/")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Uploads) != 0 {
			t.Fatalf("%d multipart uploads left behind", len(out.Uploads))
		}
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// More than 1,000 files: listing pages lazily and seeks with StartAfter,
// deleting takes two DeleteObjects batches.
func TestManyFiles(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		const n = 1005
		infos := make([]*ltx.FileInfo, n)
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				txid := ltx.TXID(i + 1)
				info, err := c.WriteLTXFile(ctx, 0, txid, txid, bytes.NewReader(replicatest.NewLTXFile(txid, txid, testTime, 1)))
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				infos[i] = info
			}()
		}
		wg.Wait()
		if firstErr != nil {
			t.Fatal(firstErr)
		}

		ops := countOps(c)
		itr, err := c.LTXFiles(ctx, 0, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if !itr.Next() || itr.Item().MinTXID != 1 {
			t.Fatalf("first item %v, err %v", itr.Item(), itr.Err())
		}
		if got := ops.get("ListObjectsV2"); got != 1 {
			t.Fatalf("%d ListObjectsV2 calls before the first page was used up, want 1", got)
		}
		count := 1
		for itr.Next() {
			if count++; itr.Item().MinTXID != ltx.TXID(count) {
				t.Fatalf("item %d is %v", count, itr.Item())
			}
		}
		if err := itr.Close(); err != nil || itr.Err() != nil || count != n {
			t.Fatalf("listed %d, close %v, err %v", count, err, itr.Err())
		}
		if got := ops.get("ListObjectsV2"); got != 2 {
			t.Fatalf("%d ListObjectsV2 calls for %d files, want 2", got, n)
		}

		// Seeking past the first page costs one request.
		seekOps := ops.get("ListObjectsV2")
		tail, err := litestream.LTXFileInfos(ctx, c, 0, 1001, false)
		if err != nil || len(tail) != 5 || tail[0].MinTXID != 1001 {
			t.Fatalf("seek 1001: %v, %v", tail, err)
		}
		if got := ops.get("ListObjectsV2") - seekOps; got != 1 {
			t.Fatalf("seek took %d ListObjectsV2 calls, want 1", got)
		}

		// Delete all of them plus one that does not exist.
		del := append(infos, &ltx.FileInfo{Level: 0, MinTXID: 5000, MaxTXID: 5000})
		if err := c.DeleteLTXFiles(ctx, del); err != nil {
			t.Fatalf("DeleteLTXFiles: %v", err)
		}
		if got := ops.get("DeleteObjects"); got != 2 {
			t.Fatalf("%d DeleteObjects calls for %d keys, want 2", got, len(del))
		}
		if left := rawKeys(t, ctx, srv.rawClient(), c.Bucket(), c.Path()+"/"); len(left) != 0 {
			t.Fatalf("%d keys left, e.g. %s", len(left), left[0])
		}
	})
}

// Reading at or past the end gives an empty read, like a local file.
func TestReadPastEnd(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		data := replicatest.NewLTXFile(1, 1, testTime, 1)
		write(t, ctx, c, 0, data)
		for _, off := range []int64{int64(len(data)), int64(len(data)) + 100} {
			for _, size := range []int64{0, 10} {
				if got := readAll(t, ctx, c, 0, 1, 1, off, size); len(got) != 0 {
					t.Fatalf("offset %d size %d: %d bytes", off, size, len(got))
				}
			}
		}
		if _, err := c.OpenLTXFile(ctx, 0, 1, 1, -1, 0); err == nil {
			t.Fatal("negative offset accepted")
		}
	})
}

// checkOpError checks an error names the backend, the operation, the
// bucket, and carries what the server (or the network) said, and no
// secret.
func checkOpError(t *testing.T, err error, bucket string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error")
	}
	msg := err.Error()
	for _, w := range append([]string{"s3: ", fmt.Sprintf("bucket %q", bucket)}, want...) {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	if secret := os.Getenv("S3_SECRET_ACCESS_KEY"); strings.Contains(msg, secret) {
		t.Errorf("error %q contains the secret key", msg)
	}
}

func TestErrors(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		data := replicatest.NewLTXFile(1, 1, testTime, 1)

		t.Run("WrongCredentials", func(t *testing.T) {
			cfg := srv.config("db")
			cfg.SecretAccessKey = "wrong-secret-key-value"
			c, err := NewReplicaClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data))
			checkOpError(t, err, c.Bucket(), "PutObject", c.key(0, 1, 1), "StatusCode: 403", "SignatureDoesNotMatch")
			if strings.Contains(err.Error(), "wrong-secret-key-value") {
				t.Fatalf("error %q contains the secret", err)
			}
			checkOpError(t, listErr(ctx, c), c.Bucket(), "ListObjectsV2", "403")
		})

		t.Run("MissingBucket", func(t *testing.T) {
			cfg := srv.config("db")
			cfg.Bucket = "no-such-bucket-" + randomHex(t, 4)
			c, err := NewReplicaClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(data))
			checkOpError(t, err, cfg.Bucket, "PutObject", "NoSuchBucket")
			_, err = c.OpenLTXFile(ctx, 0, 1, 1, 0, 0)
			checkOpError(t, err, cfg.Bucket, "GetObject", "NoSuchBucket")
			if errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a missing bucket reads as a missing file: %v", err)
			}
		})

		t.Run("MissingKey", func(t *testing.T) {
			c := newTestClient(t, srv, nil)
			_, err := c.OpenLTXFile(ctx, 0, 7, 7, 0, 0)
			checkOpError(t, err, c.Bucket(), "GetObject", c.key(0, 7, 7), "NoSuchKey")
			if !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("want os.ErrNotExist: %v", err)
			}
		})
	})

	t.Run("Unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := NewReplicaClient(Config{Bucket: "bkt", Path: "db", Endpoint: "http://" + addr,
			AccessKeyID: "a", SecretAccessKey: "b", MaxAttempts: 2, MaxBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t)
		_, err = c.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(replicatest.NewLTXFile(1, 1, testTime, 1)))
		checkOpError(t, err, "bkt", "PutObject", "db/0000/0000000000000001-0000000000000001.ltx", "connection refused", "exceeded maximum number of attempts, 2")
		checkOpError(t, listErr(ctx, c), "bkt", "ListObjectsV2", "connection refused")
	})
}

// listErr lists level 0 and returns the first error, from LTXFiles or
// from the iterator.
func listErr(ctx context.Context, c *ReplicaClient) error {
	itr, err := c.LTXFiles(ctx, 0, 0, false)
	if err != nil {
		return err
	}
	defer itr.Close()
	for itr.Next() {
	}
	return itr.Err()
}
