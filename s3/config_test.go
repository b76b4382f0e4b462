package s3

import (
	"crypto/md5"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalizeEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:9000":                "http://localhost:9000",
		"minio.localhost":               "http://minio.localhost",
		"nas.local:9000":                "http://nas.local:9000",
		"127.0.0.1:9000":                "http://127.0.0.1:9000",
		"10.1.2.3":                      "http://10.1.2.3",
		"172.16.0.1:9000":               "http://172.16.0.1:9000",
		"172.31.255.1":                  "http://172.31.255.1",
		"172.32.0.1":                    "https://172.32.0.1",
		"192.168.1.10:9000/":            "http://192.168.1.10:9000",
		"[::1]:9000":                    "http://[::1]:9000",
		"s3.example.com":                "https://s3.example.com",
		"acct.r2.cloudflarestorage.com": "https://acct.r2.cloudflarestorage.com",
		"http://s3.example.com":         "http://s3.example.com",
		"https://127.0.0.1:9000":        "https://127.0.0.1:9000",
	} {
		got, err := NormalizeEndpoint(in)
		if err != nil || got != want {
			t.Errorf("NormalizeEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://x", "http://", "://x"} {
		if _, err := NormalizeEndpoint(bad); err == nil {
			t.Errorf("NormalizeEndpoint(%q): expected an error", bad)
		}
	}
}

func TestDetectProvider(t *testing.T) {
	for ep, want := range map[string]provider{
		"":                                            providerGeneric,
		"http://127.0.0.1:9000":                       providerGeneric,
		"https://acct.r2.cloudflarestorage.com":       providerR2,
		"https://s3.us-west-002.backblazeb2.com":      providerB2,
		"https://nyc3.digitaloceanspaces.com":         providerDigitalOcean,
		"https://s3.fr-par.scw.cloud":                 providerScaleway,
		"https://fsn1.your-objectstorage.com":         providerHetzner,
		"https://s3.filebase.com":                     providerFilebase,
		"https://fly.storage.tigris.dev":              providerTigris,
		"https://t3.storage.dev":                      providerTigris,
		"https://proj.supabase.co/storage/v1/s3":      providerSupabase,
		"https://storage.googleapis.com":              providerGCS,
		"https://storage.us-east1.rep.googleapis.com": providerGCS,
		"https://compute.googleapis.com":              providerGeneric,
	} {
		if got := detectProvider(ep); got != want {
			t.Errorf("detectProvider(%q) = %v, want %v", ep, got, want)
		}
	}
}

func TestParseAccessPointARN(t *testing.T) {
	arn, region, prefix, ok := ParseAccessPointARN("arn:aws:s3:eu-west-1:123456789012:accesspoint/ap-1/a/b/")
	if !ok || arn != "arn:aws:s3:eu-west-1:123456789012:accesspoint/ap-1" || region != "eu-west-1" || prefix != "a/b" {
		t.Fatalf("got %q %q %q %v", arn, region, prefix, ok)
	}
	if _, _, _, ok := ParseAccessPointARN("mybucket"); ok {
		t.Fatal("plain bucket parsed as an ARN")
	}
	if _, region, _, ok := ParseAccessPointARN("arn:aws-cn:s3:cn-north-1:123456789012:accesspoint/x"); !ok || region != "cn-north-1" {
		t.Fatalf("aws-cn partition: %q %v", region, ok)
	}
}

func TestResolveConfig_Defaults(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		cfg                      Config
		pathStyle, md5, checksum bool
		concurrency              int
	}{
		{"AWS", Config{Bucket: "b"}, false, true, true, DefaultConcurrency},
		{"custom endpoint", Config{Bucket: "b", Endpoint: "127.0.0.1:9000"}, true, true, false, DefaultConcurrency},
		{"custom endpoint, path style off", Config{Bucket: "b", Endpoint: "127.0.0.1:9000", ForcePathStyle: ptr(false)}, false, true, false, DefaultConcurrency},
		{"R2", Config{Bucket: "b", Endpoint: "https://a.r2.cloudflarestorage.com"}, true, true, false, R2Concurrency},
		{"R2 explicit concurrency", Config{Bucket: "b", Endpoint: "https://a.r2.cloudflarestorage.com", Concurrency: 4}, true, true, false, 4},
		{"Tigris", Config{Bucket: "b", Endpoint: "https://fly.storage.tigris.dev"}, true, false, false, DefaultConcurrency},
		{"Tigris explicit MD5", Config{Bucket: "b", Endpoint: "https://fly.storage.tigris.dev", RequireContentMD5: ptr(true)}, true, true, false, DefaultConcurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := resolveConfig(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.forcePathStyle != tc.pathStyle || r.contentMD5 != tc.md5 || r.fullChecksums != tc.checksum || r.Concurrency != tc.concurrency {
				t.Fatalf("path style %v md5 %v checksums %v concurrency %d", r.forcePathStyle, r.contentMD5, r.fullChecksums, r.Concurrency)
			}
			if !r.signPayload || r.PartSize != DefaultPartSize || r.MaxAttempts != DefaultMaxAttempts {
				t.Fatalf("sign %v part size %d attempts %d", r.signPayload, r.PartSize, r.MaxAttempts)
			}
		})
	}
}

func TestResolveConfig_Errors(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		name, want string
		cfg        Config
	}{
		{"no bucket", "bucket required", Config{}},
		{"small part", "below the S3 minimum", Config{Bucket: "b", PartSize: 1 << 20}},
		{"huge part", "above the S3 maximum", Config{Bucket: "b", PartSize: 6 << 30}},
		{"negative concurrency", "concurrency", Config{Bucket: "b", Concurrency: -1}},
		{"bad endpoint", "invalid endpoint", Config{Bucket: "b", Endpoint: "ftp://x"}},
		{"SSE-C and KMS", "mutually exclusive", Config{Bucket: "b", SSECustomerKey: key, SSEKMSKeyID: "k"}},
		{"SSE-C over http", "requires an https endpoint", Config{Bucket: "b", Endpoint: "http://10.0.0.1:9000", SSECustomerKey: key}},
		{"SSE-C bad algorithm", "not supported", Config{Bucket: "b", SSECustomerKey: key, SSECustomerAlgorithm: "aws:kms"}},
		{"SSE-C short key", "32 bytes", Config{Bucket: "b", SSECustomerKey: base64.StdEncoding.EncodeToString(make([]byte, 16))}},
		{"SSE-C not base64", "not valid base64", Config{Bucket: "b", SSECustomerKey: "%%%"}},
		{"SSE-C key and path", "mutually exclusive", Config{Bucket: "b", SSECustomerKey: key, SSECustomerKeyPath: "/x"}},
		{"SSE-C algorithm alone", "without sse-customer-key", Config{Bucket: "b", SSECustomerAlgorithm: "AES256"}},
		{"SSE-C missing file", "read sse-customer-key-path", Config{Bucket: "b", SSECustomerKeyPath: "/nonexistent/key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resolveConfig(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if tc.cfg.SSECustomerKey != "" && strings.Contains(err.Error(), tc.cfg.SSECustomerKey) {
				t.Fatalf("error %q contains the key", err)
			}
		})
	}
}

func TestResolveConfig_SSECustomer(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789abcdef")
	key := base64.StdEncoding.EncodeToString(raw)
	sum := md5.Sum(raw)
	wantMD5 := base64.StdEncoding.EncodeToString(sum[:])

	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("  "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{Bucket: "b", SSECustomerKey: key},
		{Bucket: "b", SSECustomerKeyPath: keyFile, SSECustomerAlgorithm: "AES256"},
		{Bucket: "b", SSECustomerKey: key, Endpoint: "http://127.0.0.1:9000"}, // loopback: allowed
		{Bucket: "b", SSECustomerKey: key, Endpoint: "localhost:9000"},
	} {
		r, err := resolveConfig(cfg)
		if err != nil {
			t.Fatalf("%+v: %v", cfg.Endpoint, err)
		}
		if r.sse == nil || r.sse.algorithm != "AES256" || r.sse.key != key || r.sse.keyMD5 != wantMD5 {
			t.Fatalf("got %+v", r.sse)
		}
	}
}

func TestParseHost(t *testing.T) {
	h, err := ParseHost("bkt.127.0.0.1:9000")
	if err != nil || h.Bucket != "bkt" || h.Endpoint != "http://127.0.0.1:9000" || h.Region != DefaultRegion || h.ForcePathStyle == nil || !*h.ForcePathStyle {
		t.Fatalf("got %+v, %v", h, err)
	}
	if h, err = ParseHost("plain-bucket"); err != nil || h.Bucket != "plain-bucket" || h.Endpoint != "" || h.ForcePathStyle != nil {
		t.Fatalf("got %+v, %v", h, err)
	}
	if h, err = ParseHost("b.s3-us-west-2.amazonaws.com"); err != nil || h.Bucket != "b" || h.Region != "us-west-2" {
		t.Fatalf("got %+v, %v", h, err)
	}
	if _, err = ParseHost(""); err == nil {
		t.Fatal("empty host: expected an error")
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		path, want string
		level      int
	}{
		{"backups/app", "backups/app/0009/0000000000000001-000000000000001a.ltx", 9},
		{"/backups/app/", "backups/app/0000/0000000000000001-000000000000001a.ltx", 0},
		{"", "000a/0000000000000001-000000000000001a.ltx", 10},
	} {
		c, err := NewReplicaClient(Config{Bucket: "b", Path: tc.path, Endpoint: "127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.key(tc.level, 1, 0x1a); got != tc.want {
			t.Errorf("path %q level %d: got %q, want %q", tc.path, tc.level, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
