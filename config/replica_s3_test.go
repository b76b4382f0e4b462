package config

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream/s3"
)

func ptr[T any](v T) *T { return &v }

func TestS3ConfigFromSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    ReplicaSettings
		want s3.Config
	}{
		{
			name: "plain bucket and path",
			s:    ReplicaSettings{URL: "s3://mybucket/backups/app"},
			want: s3.Config{Bucket: "mybucket", Path: "backups/app"},
		},
		{
			name: "no path, trailing slash",
			s:    ReplicaSettings{URL: "s3://mybucket/"},
			want: s3.Config{Bucket: "mybucket"},
		},
		{
			name: "path cleaned",
			s:    ReplicaSettings{URL: "s3://mybucket//a/./b/"},
			want: s3.Config{Bucket: "mybucket", Path: "a/b"},
		},
		{
			name: "camelCase query",
			s: ReplicaSettings{URL: "s3://b/p?endpoint=minio.lan:9000&region=eu-west-1&forcePathStyle=false&skipVerify=true" +
				"&signPayload=false&requireContentMD5=false&storageClass=STANDARD_IA&partSize=10485760&concurrency=3"},
			want: s3.Config{Bucket: "b", Path: "p", Endpoint: "minio.lan:9000", Region: "eu-west-1",
				ForcePathStyle: ptr(false), SkipVerify: true, SignPayload: ptr(false), RequireContentMD5: ptr(false),
				StorageClass: "STANDARD_IA", PartSize: 10 << 20, Concurrency: 3},
		},
		{
			name: "hyphenated query aliases",
			s: ReplicaSettings{URL: "s3://b/p?force-path-style=true&skip-verify=true&sign-payload=true" +
				"&require-content-md5=true&storage-class=GLACIER_IR&part-size=8MiB" +
				"&sse-kms-key-id=alias/k"},
			want: s3.Config{Bucket: "b", Path: "p", ForcePathStyle: ptr(true), SkipVerify: true, SignPayload: ptr(true),
				RequireContentMD5: ptr(true), StorageClass: "GLACIER_IR", PartSize: 8 << 20, SSEKMSKeyID: "alias/k"},
		},
		{
			name: "SSE-C query",
			s:    ReplicaSettings{URL: "s3://b/p?sseCustomerAlgorithm=AES256&sseCustomerKey=abc%3D&sseCustomerKeyMD5=x"},
			want: s3.Config{Bucket: "b", Path: "p", SSECustomerAlgorithm: "AES256", SSECustomerKey: "abc="},
		},
		{
			name: "unknown query ignored",
			s:    ReplicaSettings{URL: "s3://b/p?foo=bar"},
			want: s3.Config{Bucket: "b", Path: "p"},
		},
		{
			name: "MinIO host form",
			s:    ReplicaSettings{URL: "s3://mybkt.localhost:9000/db"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "us-east-1", Endpoint: "http://localhost:9000", ForcePathStyle: ptr(true)},
		},
		{
			name: "MinIO host form, path style overridden",
			s:    ReplicaSettings{URL: "s3://mybkt.minio.lan:9000/db?forcePathStyle=false"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "us-east-1", Endpoint: "http://minio.lan:9000", ForcePathStyle: ptr(false)},
		},
		{
			name: "AWS virtual host with region",
			s:    ReplicaSettings{URL: "s3://mybkt.s3.eu-central-1.amazonaws.com/db"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "eu-central-1"},
		},
		{
			name: "AWS virtual host without region",
			s:    ReplicaSettings{URL: "s3://my.dotted.bkt.s3.amazonaws.com/db"},
			want: s3.Config{Bucket: "my.dotted.bkt", Path: "db"},
		},
		{
			name: "DigitalOcean stays virtual-host style",
			s:    ReplicaSettings{URL: "s3://mybkt.nyc3.digitaloceanspaces.com/db"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "nyc3", Endpoint: "https://nyc3.digitaloceanspaces.com", ForcePathStyle: ptr(false)},
		},
		{
			name: "Backblaze B2 path style",
			s:    ReplicaSettings{URL: "s3://mybkt.s3.us-west-002.backblazeb2.com/db"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "us-west-002", Endpoint: "https://s3.us-west-002.backblazeb2.com", ForcePathStyle: ptr(true)},
		},
		{
			name: "Filebase",
			s:    ReplicaSettings{URL: "s3://mybkt.s3.filebase.com/db"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Endpoint: "https://s3.filebase.com", ForcePathStyle: ptr(true)},
		},
		{
			name: "Scaleway",
			s:    ReplicaSettings{URL: "s3://mybkt.s3.fr-par.scw.cloud/db"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "fr-par", Endpoint: "https://s3.fr-par.scw.cloud", ForcePathStyle: ptr(false)},
		},
		{
			name: "explicit endpoint key replaces host endpoint and its addressing default",
			s:    ReplicaSettings{URL: "s3://mybkt.nyc3.digitaloceanspaces.com/db", Endpoint: "https://proxy.example"},
			want: s3.Config{Bucket: "mybkt", Path: "db", Region: "nyc3", Endpoint: "https://proxy.example"},
		},
		{
			name: "access point ARN",
			s:    ReplicaSettings{URL: "s3://arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap/backups/db"},
			want: s3.Config{Bucket: "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap", Region: "us-west-2", Path: "backups/db"},
		},
		{
			name: "access point ARN without prefix, with query",
			s:    ReplicaSettings{URL: "s3://arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap?storageClass=STANDARD"},
			want: s3.Config{Bucket: "arn:aws:s3:us-west-2:123456789012:accesspoint/my-ap", Region: "us-west-2", StorageClass: "STANDARD"},
		},
		{
			name: "keys only",
			s: ReplicaSettings{Bucket: "b", Path: "/x/y/", Region: "r", Endpoint: "http://127.0.0.1:9000",
				AccessKeyID: "AK", SecretAccessKey: "SK", ForcePathStyle: ptr(false), SignPayload: ptr(false),
				RequireContentMD5: ptr(false), SkipVerify: true, StorageClass: "ONEZONE_IA", PartSize: ptr(Size(6 << 20)),
				Concurrency: ptr(7), SSECustomerAlgorithm: "AES256", SSECustomerKey: "k", SSECustomerKeyPath: "/kp", SSEKMSKeyID: "kms"},
			want: s3.Config{Bucket: "b", Path: "x/y", Region: "r", Endpoint: "http://127.0.0.1:9000",
				AccessKeyID: "AK", SecretAccessKey: "SK", ForcePathStyle: ptr(false), SignPayload: ptr(false),
				RequireContentMD5: ptr(false), SkipVerify: true, StorageClass: "ONEZONE_IA", PartSize: 6 << 20,
				Concurrency: 7, SSECustomerAlgorithm: "AES256", SSECustomerKey: "k", SSECustomerKeyPath: "/kp", SSEKMSKeyID: "kms"},
		},
		{
			name: "keys override URL query",
			s:    ReplicaSettings{URL: "s3://b/p?region=a&endpoint=e1&concurrency=2", Region: "b", Endpoint: "e2", Concurrency: ptr(4)},
			want: s3.Config{Bucket: "b", Path: "p", Region: "b", Endpoint: "e2", Concurrency: 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LITESTREAM_S3_ENDPOINT", "")
			got, err := s3ConfigFromSettings(&tc.s, parseURLForTest(t, tc.s.URL))
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", show(got), show(tc.want))
			}
		})
	}
}

// parseURLForTest mimics NewReplicaClient, which cannot parse access-point
// ARNs (their colons read as a bad port): the factory then gets u == nil
// and reads the raw URL from the settings.
func parseURLForTest(t *testing.T, s string) *url.URL {
	if s == "" || strings.HasPrefix(s, "s3://arn:") {
		return nil
	}
	u, err := ParseReplicaURL(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return u
}

// show prints a Config with its *bool fields dereferenced.
func show(c s3.Config) string {
	b := func(p *bool) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	fps, sp, md5 := b(c.ForcePathStyle), b(c.SignPayload), b(c.RequireContentMD5)
	c.ForcePathStyle, c.SignPayload, c.RequireContentMD5 = nil, nil, nil
	return fmt.Sprintf("%+v ForcePathStyle=%s SignPayload=%s RequireContentMD5=%s", c, fps, sp, md5)
}

func TestS3ConfigFromSettings_Errors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		s          ReplicaSettings
	}{
		{"url and bucket", "cannot specify url together with bucket or path", ReplicaSettings{URL: "s3://b/p", Bucket: "x"}},
		{"url and path", "cannot specify url together with bucket or path", ReplicaSettings{URL: "s3://b/p", Path: "x"}},
		{"no bucket", "bucket required", ReplicaSettings{Path: "x"}},
		{"bad bool", "forcePathStyle", ReplicaSettings{URL: "s3://b/p?forcePathStyle=maybe"}},
		{"bad part size", "partSize", ReplicaSettings{URL: "s3://b/p?partSize=-1"}},
		{"zero concurrency", "concurrency", ReplicaSettings{URL: "s3://b/p?concurrency=0"}},
		{"zero concurrency key", "concurrency", ReplicaSettings{Bucket: "b", Concurrency: ptr(0)}},
		{"host:port without bucket", "bucket.host:port", ReplicaSettings{URL: "s3://localhost:9000/p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s3ConfigFromSettings(&tc.s, parseURLForTest(t, tc.s.URL))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestS3ConfigFromSettings_EnvEndpoint(t *testing.T) {
	t.Setenv("LITESTREAM_S3_ENDPOINT", "http://127.0.0.1:9000")
	s := ReplicaSettings{URL: "s3://b/p"}
	got, err := s3ConfigFromSettings(&s, parseURLForTest(t, s.URL))
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != "http://127.0.0.1:9000" || got.ForcePathStyle != nil {
		t.Fatalf("got endpoint %q path style %v", got.Endpoint, got.ForcePathStyle)
	}
	// An endpoint in the URL wins over the environment.
	s = ReplicaSettings{URL: "s3://b/p?endpoint=other:1"}
	if got, _ = s3ConfigFromSettings(&s, parseURLForTest(t, s.URL)); got.Endpoint != "other:1" {
		t.Fatalf("got endpoint %q", got.Endpoint)
	}
}

// The registered factory builds a working client from YAML keys or a URL
// without touching the network.
func TestNewReplicaClient_S3(t *testing.T) {
	for _, s := range []ReplicaSettings{
		{URL: "s3://mybkt.localhost:9000/a/b"},
		{Type: "s3", Bucket: "mybkt", Path: "a/b", Endpoint: "127.0.0.1:9000"},
	} {
		c, err := NewReplicaClient(&s)
		if err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
		sc, ok := c.(*s3.ReplicaClient)
		if !ok {
			t.Fatalf("got %T", c)
		}
		if sc.Type() != "s3" || sc.Bucket() != "mybkt" || sc.Path() != "a/b" || !strings.HasPrefix(sc.Endpoint(), "http://") {
			t.Fatalf("got type %q bucket %q path %q endpoint %q", sc.Type(), sc.Bucket(), sc.Path(), sc.Endpoint())
		}
	}
}

// Configuration errors never echo secrets.
func TestNewReplicaClient_S3ErrorsHideSecrets(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LWtleQ" // not 32 bytes
	s := ReplicaSettings{Type: "s3", Bucket: "b", Endpoint: "https://x.example", AccessKeyID: "AKIDSECRET",
		SecretAccessKey: "SUPERSECRET", SSECustomerKey: secret}
	_, err := NewReplicaClient(&s)
	if err == nil {
		t.Fatal("expected an error for a bad SSE-C key")
	}
	for _, v := range []string{secret, "AKIDSECRET", "SUPERSECRET"} {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error %q contains a secret", err)
		}
	}
}
