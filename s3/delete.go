package s3

import (
	"context"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/superfly/ltx"
)

// DeleteLTXFiles deletes files in DeleteObjects batches of MaxKeys.
// Missing files are not an error (S3 reports none); any other per-key
// failure is returned with the key and the server's code and message.
func (c *ReplicaClient) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(a) == 0 {
		return nil
	}
	api, err := c.client(ctx)
	if err != nil {
		return err
	}
	keys := make([]string, len(a))
	for i, info := range a {
		keys[i] = c.key(info.Level, info.MinTXID, info.MaxTXID)
	}
	for len(keys) > 0 {
		n := min(len(keys), MaxKeys)
		if err := c.deleteBatch(ctx, api, keys[:n]); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (c *ReplicaClient) deleteBatch(ctx context.Context, api *s3.Client, keys []string) error {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	var opts []func(*s3.Options)
	if c.cfg.contentMD5 {
		opts = append(opts, func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, addContentMD5)
		})
	}
	out, err := api.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(c.cfg.Bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	}, opts...)
	if err != nil {
		return c.opError(fmt.Sprintf("DeleteObjects (%d keys from %q)", len(keys), keys[0]), "", err)
	}
	var errs []types.Error
	for _, e := range out.Errors {
		if aws.ToString(e.Code) != "NoSuchKey" {
			errs = append(errs, e)
		}
	}
	if err := deleteErrors(errs); err != nil {
		return c.opError("DeleteObjects", "", err)
	}
	return nil
}

// levelDirRegex matches keys inside a level directory at the bucket root.
var levelDirRegex = regexp.MustCompile(`^[0-9a-f]{4}/`)

// DeleteAll deletes every object under "<path>/". With an empty path the
// replica lives at the bucket root, so only keys inside level
// directories (XXXX/...) are deleted, never the rest of the bucket.
//
// It lists one page, deletes it and lists again after the last key seen,
// so memory stays bounded and every round makes progress.
func (c *ReplicaClient) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	api, err := c.client(ctx)
	if err != nil {
		return err
	}
	prefix := ""
	if c.cfg.Path != "" {
		prefix = c.cfg.Path + "/"
	}
	in := &s3.ListObjectsV2Input{Bucket: aws.String(c.cfg.Bucket), Prefix: aws.String(prefix)}
	for {
		page, err := api.ListObjectsV2(ctx, in)
		if err != nil {
			return c.listError(prefix, err)
		}
		var keys []string
		for _, obj := range page.Contents {
			if key := aws.ToString(obj.Key); prefix != "" || levelDirRegex.MatchString(key) {
				keys = append(keys, key)
			}
		}
		for len(keys) > 0 {
			n := min(len(keys), MaxKeys)
			if err := c.deleteBatch(ctx, api, keys[:n]); err != nil {
				return err
			}
			keys = keys[n:]
		}
		if !aws.ToBool(page.IsTruncated) || len(page.Contents) == 0 {
			return nil
		}
		in.StartAfter = page.Contents[len(page.Contents)-1].Key
		in.ContinuationToken = nil
	}
}
