package oss

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

func TestParseHost(t *testing.T) {
	for _, tt := range []struct {
		host, bucket, region, endpoint string
	}{
		{"mybucket", "mybucket", "", ""},
		{"mybucket.oss-cn-hangzhou.aliyuncs.com", "mybucket", "cn-hangzhou", "https://s3.oss-cn-hangzhou.aliyuncs.com"},
		{"my-bkt.oss-eu-central-1-internal.aliyuncs.com", "my-bkt", "eu-central-1", "https://s3.oss-eu-central-1-internal.aliyuncs.com"},
		{"b.s3.oss-ap-southeast-1.aliyuncs.com", "b", "ap-southeast-1", "https://s3.oss-ap-southeast-1.aliyuncs.com"},
	} {
		bucket, region, endpoint, err := ParseHost(tt.host)
		if err != nil {
			t.Fatalf("%s: %v", tt.host, err)
		}
		if bucket != tt.bucket || region != tt.region || endpoint != tt.endpoint {
			t.Errorf("%s: got (%q, %q, %q), want (%q, %q, %q)", tt.host, bucket, region, endpoint, tt.bucket, tt.region, tt.endpoint)
		}
	}
	for _, host := range []string{"", "bucket.example.com", "bucket:9000"} {
		if _, _, _, err := ParseHost(host); err == nil || !strings.Contains(err.Error(), "oss URL host") {
			t.Errorf("ParseHost(%q) = %v, want an error naming the host", host, err)
		}
	}
}

func TestS3Config(t *testing.T) {
	t.Setenv("OSS_ACCESS_KEY_ID", "env-id")
	t.Setenv("OSS_ACCESS_KEY_SECRET", "env-secret")
	for _, tt := range []struct {
		name      string
		cfg       Config
		endpoint  string
		region    string
		pathStyle string // "", "true", "false"
		id        string
	}{
		{"defaults", Config{Bucket: "b"}, "https://s3.oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou", "false", "env-id"},
		{"region", Config{Bucket: "b", Region: "us-west-1"}, "https://s3.oss-us-west-1.aliyuncs.com", "us-west-1", "false", "env-id"},
		{"native endpoint", Config{Bucket: "b", Endpoint: "oss-cn-beijing.aliyuncs.com"}, "https://s3.oss-cn-beijing.aliyuncs.com", "cn-hangzhou", "false", "env-id"},
		{"native internal endpoint", Config{Bucket: "b", Endpoint: "https://oss-cn-beijing-internal.aliyuncs.com"}, "https://s3.oss-cn-beijing-internal.aliyuncs.com", "cn-hangzhou", "false", "env-id"},
		{"custom endpoint", Config{Bucket: "b", Endpoint: "http://127.0.0.1:9000", AccessKeyID: "id", SecretAccessKey: "s"}, "http://127.0.0.1:9000", "cn-hangzhou", "", "id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.s3Config()
			if err != nil {
				t.Fatal(err)
			}
			ps := ""
			if c.ForcePathStyle != nil {
				ps = map[bool]string{true: "true", false: "false"}[*c.ForcePathStyle]
			}
			if c.Endpoint != tt.endpoint || c.Region != tt.region || ps != tt.pathStyle || c.AccessKeyID != tt.id || c.Backend != "oss" {
				t.Errorf("got endpoint %q region %q path-style %q id %q backend %q", c.Endpoint, c.Region, ps, c.AccessKeyID, c.Backend)
			}
		})
	}
	if _, err := (Config{}).s3Config(); err == nil || !strings.Contains(err.Error(), "bucket required") {
		t.Errorf("no bucket: %v", err)
	}
	if _, err := (Config{Bucket: "b", Endpoint: "http://"}).s3Config(); err == nil || !strings.Contains(err.Error(), "invalid endpoint") {
		t.Errorf("bad endpoint: %v", err)
	}
}

// The client must not offer a lease: OSS's S3 API does not promise the
// conditional writes the S3 lease relies on.
func TestNoLease(t *testing.T) {
	c, err := NewReplicaClient(Config{Bucket: "b", AccessKeyID: "id", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := any(c).(litestream.Leaser); ok {
		t.Fatal("oss client implements Leaser")
	}
	if c.Type() != "oss" {
		t.Fatalf("Type() = %q", c.Type())
	}
}

// newTestClient points an OSS client at the local S3 server: OSS is
// reached through its S3-compatible API, which is what the test server
// speaks. There is no OSS server that runs locally.
func newTestClient(t *testing.T) *ReplicaClient {
	t.Helper()
	endpoint := os.Getenv("MINIO_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("S3_ENDPOINT")
	}
	if endpoint == "" || os.Getenv("S3_BUCKET") == "" {
		t.Skip("no S3-compatible server: set S3_ENDPOINT (or MINIO_ENDPOINT), S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and S3_BUCKET (scripts/testinfra/start-servers.sh)")
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	region := os.Getenv("S3_REGION")
	if region == "" {
		region = "us-east-1" // MinIO's, checked in every signature
	}
	c, err := NewReplicaClient(Config{
		Bucket:          os.Getenv("S3_BUCKET"),
		Region:          region,
		Path:            "oss-test/" + hex.EncodeToString(b),
		Endpoint:        endpoint,
		AccessKeyID:     os.Getenv("S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("S3_SECRET_ACCESS_KEY"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.DeleteAll(context.Background()) })
	return c
}

func TestReplicaClient_Conformance(t *testing.T) {
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient { return newTestClient(t) })
}

// Errors name the backend as oss, with the bucket and key.
func TestErrorsNameOSS(t *testing.T) {
	c := newTestClient(t)
	_, err := c.OpenLTXFile(context.Background(), 0, 1, 1, 0, 0)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want os.ErrNotExist", err)
	}
	key := c.Path() + "/0000/" + ltx.FormatFilename(1, 1)
	if !strings.HasPrefix(err.Error(), "oss: ") || !strings.Contains(err.Error(), key) {
		t.Fatalf("error %q does not name oss and key %q", err, key)
	}
}
