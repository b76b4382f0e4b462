package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream/config"
)

// TestOSSReplicateAndRestore replicates through an oss:// URL and
// restores from it. OSS is reached through its S3-compatible API, so the
// local S3 server stands in for it via ?endpoint=.
func TestOSSReplicateAndRestore(t *testing.T) {
	endpoint := os.Getenv("MINIO_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("S3_ENDPOINT")
	}
	if endpoint == "" || os.Getenv("S3_BUCKET") == "" {
		t.Skip("no S3-compatible server: set S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET (scripts/testinfra/start-servers.sh)")
	}
	// The OSS SDK's variable names, as a user of Alibaba Cloud sets them.
	t.Setenv("OSS_ACCESS_KEY_ID", os.Getenv("S3_ACCESS_KEY_ID"))
	t.Setenv("OSS_ACCESS_KEY_SECRET", os.Getenv("S3_SECRET_ACCESS_KEY"))
	region := os.Getenv("S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	url := fmt.Sprintf("oss://%s/osscli/%d?endpoint=%s&region=%s", os.Getenv("S3_BUCKET"), time.Now().UnixNano(), endpoint, region)
	t.Cleanup(func() {
		if c, err := config.NewReplicaClient(&config.ReplicaSettings{URL: url}); err == nil {
			_ = c.DeleteAll(context.Background())
		}
	})

	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
	mustExec(t, app, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 500) INSERT INTO t (v) SELECT hex(randomblob(50)) FROM n")
	if code, _, stderr := runCLI(t, "replicate", "-once", dbPath, url); code != 0 {
		t.Fatalf("replicate -once to %s: %d %s", url, code, stderr)
	}
	mustExec(t, app, "INSERT INTO t (v) SELECT v FROM t WHERE id <= 100")
	if code, _, stderr := runCLI(t, "replicate", "-once", dbPath, url); code != 0 {
		t.Fatalf("second replicate -once: %d %s", code, stderr)
	}
	want := queryInt(t, dbPath, "SELECT COUNT(*) || '' FROM t")
	wantSum := queryInt(t, dbPath, "SELECT SUM(length(v) * id) FROM t")

	out := filepath.Join(dir, "out.db")
	if code, _, stderr := runCLI(t, "restore", "-o", out, url); code != 0 {
		t.Fatalf("restore from %s: %d %s", url, code, stderr)
	}
	integrityOK(t, out)
	if got := queryInt(t, out, "SELECT COUNT(*) FROM t"); got != want || want != 600 {
		t.Fatalf("restored %d rows, database has %d (want 600)", got, want)
	}
	if got := queryInt(t, out, "SELECT SUM(length(v) * id) FROM t"); got != wantSum {
		t.Fatalf("restored rows differ: checksum %d, want %d", got, wantSum)
	}
}
