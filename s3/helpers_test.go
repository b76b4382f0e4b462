package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// testServer is one S3 server from the testinfra environment.
type testServer struct {
	name, endpoint string
}

// testServers returns the S3 servers whose variables are set: MinIO
// (MINIO_ENDPOINT, or S3_ENDPOINT when S3_SERVER is not versitygw) and
// versitygw (VERSITYGW_ENDPOINT).
func testServers() []testServer {
	if os.Getenv("S3_ACCESS_KEY_ID") == "" || os.Getenv("S3_BUCKET") == "" {
		return nil
	}
	var a []testServer
	minio := os.Getenv("MINIO_ENDPOINT")
	if minio == "" && os.Getenv("S3_SERVER") != "versitygw" {
		minio = os.Getenv("S3_ENDPOINT")
	}
	if minio != "" {
		a = append(a, testServer{"minio", minio})
	}
	if v := os.Getenv("VERSITYGW_ENDPOINT"); v != "" {
		a = append(a, testServer{"versitygw", v})
	}
	return a
}

// forEachServer runs fn as a subtest per configured server, or skips.
func forEachServer(t *testing.T, fn func(t *testing.T, srv testServer)) {
	t.Helper()
	servers := testServers()
	if len(servers) == 0 {
		t.Skip("no S3 server: set S3_ENDPOINT (or MINIO_ENDPOINT) and/or VERSITYGW_ENDPOINT, " +
			"S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and S3_BUCKET (see testinfra/README.md)")
	}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) { fn(t, srv) })
	}
}

func (srv testServer) config(path string) Config {
	return Config{
		Bucket:          os.Getenv("S3_BUCKET"),
		Path:            path,
		Region:          os.Getenv("S3_REGION"),
		Endpoint:        srv.endpoint,
		AccessKeyID:     os.Getenv("S3_ACCESS_KEY_ID"),
		SecretAccessKey: os.Getenv("S3_SECRET_ACCESS_KEY"),
		MaxBackoff:      100 * time.Millisecond, // keep retry tests fast
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// uniquePath is a fresh prefix per call, named after the test.
func uniquePath(t *testing.T) string {
	name := unsafeChars.ReplaceAllString(t.Name(), "-")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return "s3test/" + strings.Trim(name, "-") + "-" + randomHex(t, 4)
}

// newTestClient returns a client on a fresh prefix, deleted at cleanup.
func newTestClient(t *testing.T, srv testServer, mutate func(*Config)) *ReplicaClient {
	t.Helper()
	cfg := srv.config(uniquePath(t))
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := NewReplicaClient(cfg)
	if err != nil {
		t.Fatalf("NewReplicaClient: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DeleteAll(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return c
}

// rawClient is a plain SDK client for looking at what the replica stored.
func (srv testServer) rawClient() *s3.Client {
	return s3.New(s3.Options{
		Region:       os.Getenv("S3_REGION"),
		BaseEndpoint: aws.String(srv.endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("S3_ACCESS_KEY_ID"), os.Getenv("S3_SECRET_ACCESS_KEY"), ""),
	})
}

// rawKeys lists every key under prefix, sorted.
func rawKeys(t *testing.T, ctx context.Context, api *s3.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for i := 0; p.HasMorePages() && i < 1000; i++ {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// opCounter counts SDK operations by name (once per call, not per retry).
type opCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *opCounter) get(op string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[op]
}

// countOps makes c's SDK client count its operations.
func countOps(c *ReplicaClient) *opCounter {
	counter := &opCounter{n: map[string]int{}}
	c.addAPIOptions(func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testCountOps", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			counter.mu.Lock()
			counter.n[middleware.GetOperationName(ctx)]++
			counter.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	})
	return counter
}

// addAPIOptions rebuilds c's SDK client with extra middleware.
func (c *ReplicaClient) addAPIOptions(fns ...func(*middleware.Stack) error) {
	opts := c.api.Options()
	opts.APIOptions = append(append([]func(*middleware.Stack) error(nil), opts.APIOptions...), fns...)
	c.api = s3.New(opts)
}

// rebuildAPI makes c's SDK client again after a test changed c.cfg.
func (c *ReplicaClient) rebuildAPI() { c.api = c.newAPI(c.api.Options().Region) }
