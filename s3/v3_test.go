package s3

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/internal/v3fixture"
)

const (
	v3GenA = "0123456789abcdef"
	v3GenB = "fedcba9876543210"
)

// v3Fixture is a v0.3 replica in a local directory, written from a real
// database, with the database's content hash after every file.
type v3Fixture struct {
	root   string
	times  []time.Time // fixture clock time of each file, ascending
	states []string    // content hash after times[i]
}

// buildV3Fixture writes generation A (snapshots at WAL indexes 0 and 2,
// multi-segment WAL files 0 and 1 with inserts, updates, a schema change,
// a VACUUM) and a later generation B.
func buildV3Fixture(t *testing.T) *v3Fixture {
	f := &v3Fixture{root: filepath.Join(t.TempDir(), "replica")}
	rep := v3fixture.New(t, f.root, filepath.Join(t.TempDir(), "app.db"), v3GenA, 4096,
		time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	record := func(ts time.Time) {
		if ts.IsZero() {
			t.Fatal("fixture: nothing was written")
		}
		f.times = append(f.times, ts)
		f.states = append(f.states, v3ContentHash(t, rep.DBPath))
	}
	rep.Exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
	record(rep.Snapshot()) // 0: snapshot, index 0
	for i := 0; i < 3; i++ {
		rep.Exec("INSERT INTO items (name, data) SELECT 'row', randomblob(700) FROM (SELECT 1 UNION ALL SELECT 2)")
		rep.Exec("INSERT INTO items (name, data) VALUES ('big', randomblob(30000))")
		record(rep.Ship()) // 1-3: wal index 0
	}
	rep.Checkpoint()
	rep.Exec("UPDATE items SET name = name || '!' WHERE id % 2 = 0")
	rep.Exec("CREATE TABLE other (k TEXT PRIMARY KEY, v) WITHOUT ROWID")
	record(rep.Ship()) // 4: wal index 1
	rep.Exec("DELETE FROM items WHERE name = 'big'")
	rep.Exec("VACUUM")
	record(rep.Ship())     // 5: wal index 1
	record(rep.Snapshot()) // 6: snapshot, index 2
	rep.Exec("INSERT INTO other VALUES ('a', 1), ('b', x'00ff')")
	record(rep.Ship()) // 7: wal index 2

	rep.NewGeneration(v3GenB)
	rep.Exec("INSERT INTO items (name) VALUES ('gen2')")
	record(rep.Snapshot()) // 8
	rep.Exec("UPDATE other SET v = 2")
	record(rep.Ship()) // 9
	return f
}

// v3File is one fixture file: its key relative to the replica path and
// its fixture time.
type v3File struct {
	rel   string
	mtime time.Time
}

// files returns the fixture's files in the order they were written.
func (f *v3Fixture) files(t *testing.T) []v3File {
	var a []v3File
	err := filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(f.root, p)
		a = append(a, v3File{filepath.ToSlash(rel), fi.ModTime()})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(a, func(i, j int) bool { return a[i].mtime.Before(a[j].mtime) })
	if len(a) != len(f.times) {
		t.Fatalf("fixture has %d files, recorded %d", len(a), len(f.times))
	}
	return a
}

// uploadV3 copies fixture files to <prefix>/<rel>, in order; the segment
// at wide (if any) is stored under its 16-digit-offset name.
func uploadV3(t *testing.T, ctx context.Context, api *s3.Client, bucket, prefix, root string, files []v3File, wide string) {
	t.Helper()
	for _, f := range files {
		key := path.Join(prefix, f.rel)
		if f.rel == wide {
			gen, index, offset := parseFixtureSegment(t, f.rel)
			key = litestream.V3WALSegmentPathWide(prefix, gen, index, offset)
		}
		body, err := os.Open(filepath.Join(root, filepath.FromSlash(f.rel)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: body})
		body.Close()
		if err != nil {
			t.Fatalf("PutObject %s: %v", key, err)
		}
	}
}

func parseFixtureSegment(t *testing.T, rel string) (string, int, int64) {
	parts := strings.Split(rel, "/") // generations/<gen>/wal/<name>
	index, offset, err := litestream.ParseV3WALSegmentName(parts[len(parts)-1])
	if err != nil || len(parts) != 4 {
		t.Fatalf("not a segment: %s %v", rel, err)
	}
	return parts[1], index, offset
}

// lastModified returns the oldest and newest LastModified under prefix.
func lastModified(t *testing.T, ctx context.Context, api *s3.Client, bucket, prefix string) (oldest, newest time.Time) {
	t.Helper()
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for i := 0; p.HasMorePages() && i < 100; i++ {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range page.Contents {
			lm := aws.ToTime(o.LastModified)
			if oldest.IsZero() || lm.Before(oldest) {
				oldest = lm
			}
			if lm.After(newest) {
				newest = lm
			}
		}
	}
	return oldest, newest
}

// waitServerClockPast returns once an object written now gets a
// LastModified after ts, as the server reports it in listings (at its
// own precision), so everything uploaded afterwards is dated after ts.
func waitServerClockPast(t *testing.T, ctx context.Context, api *s3.Client, bucket, key string, ts time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x")}); err != nil {
			t.Fatalf("PutObject %s: %v", key, err)
		}
		if _, lm := lastModified(t, ctx, api, bucket, key); lm.After(ts) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server clock did not pass %s", ts)
		}
		time.Sleep(20 * time.Millisecond) // polling interval; the condition is checked above
	}
}

// uploadRounds uploads files in rounds, round k ending after files[cuts[k]],
// each round dated after the one before, and returns the newest
// LastModified of each round.
func uploadRounds(t *testing.T, ctx context.Context, api *s3.Client, bucket, prefix, root string, files []v3File, cuts []int, wide string) []time.Time {
	t.Helper()
	var at []time.Time
	start := 0
	for _, cut := range cuts {
		if len(at) > 0 {
			waitServerClockPast(t, ctx, api, bucket, path.Join(prefix, "clock-probe"), at[len(at)-1])
		}
		uploadV3(t, ctx, api, bucket, prefix, root, files[start:cut+1], wide)
		_, newest := lastModified(t, ctx, api, bucket, litestream.V3GenerationsDir(prefix)+"/")
		at = append(at, newest)
		start = cut + 1
	}
	return at
}

// limitListPages makes c's ListObjectsV2 calls return at most n keys or
// prefixes each, so listings need several pages.
func limitListPages(c *ReplicaClient, n int32) {
	c.addAPIOptions(func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("testLimitListPages", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if p, ok := in.Parameters.(*s3.ListObjectsV2Input); ok {
				p.MaxKeys = aws.Int32(n)
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
	})
}

// TestV3RestoreMatchesFileReplica uploads a v0.3 fixture in three rounds
// and restores it through the S3 client, at the latest state and at the
// end of each round: the content must match a restore of the same
// fixture from a file replica, and the database when it was backed up.
func TestV3RestoreMatchesFileReplica(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		fx := buildV3Fixture(t)
		files := fx.files(t)
		c := newTestClient(t, srv, nil)
		limitListPages(c, 2)
		ops := countOps(c)
		api, bucket := srv.rawClient(), c.Bucket()
		// Wide offset naming for one segment at a non-zero offset.
		wide := files[2].rel

		// Generation B starts a round of its own: on servers with
		// 1-second LastModified, generations ending in the same second
		// would tie for "latest".
		cuts := []int{2, 5, 7, len(files) - 1}
		at := uploadRounds(t, ctx, api, bucket, c.Path(), fx.root, files, cuts, wide)

		pages := checkV3Listings(t, ctx, c, file.NewReplicaClient(fx.root))
		if n := ops.get("ListObjectsV2"); n != pages {
			t.Fatalf("%d ListObjectsV2 calls with 2 keys a page, want %d", n, pages)
		}

		fileClient := file.NewReplicaClient(fx.root)
		latest := v3RestoreHash(t, c, time.Time{})
		if latest != v3RestoreHash(t, fileClient, time.Time{}) || latest != fx.states[len(fx.states)-1] {
			t.Fatal("latest restore through S3 differs from the file replica's and the database's")
		}
		for k, cut := range cuts[:3] {
			got := v3RestoreHash(t, c, at[k])
			if got != v3RestoreHash(t, fileClient, fx.times[cut]) || got != fx.states[cut] {
				t.Fatalf("restore at %s (end of round %d) differs from the file replica at %s", at[k], k, fx.times[cut])
			}
			if got == latest {
				t.Fatalf("round %d: fixture states do not differ", k)
			}
		}

		oldest, _ := lastModified(t, ctx, api, bucket, c.Path()+"/generations/")
		out := filepath.Join(t.TempDir(), "none.db")
		_, err := litestream.Restore(ctx, c, litestream.RestoreOptions{OutputPath: out, Target: litestream.RestoreTarget{Timestamp: oldest.Add(-time.Second)}})
		if !errors.Is(err, litestream.ErrNoBackup) {
			t.Fatalf("restore before the first snapshot: %v", err)
		}
	})
}

// checkV3Listings compares the S3 listings with the file replica's of
// the same files: the same generations, indexes, offsets and sizes. It
// returns the ListObjectsV2 pages those listings take at 2 keys a page.
func checkV3Listings(t *testing.T, ctx context.Context, c *ReplicaClient, fc *file.ReplicaClient) int {
	t.Helper()
	gens, err := c.GenerationsV3(ctx)
	if err != nil || !reflect.DeepEqual(gens, []string{v3GenA, v3GenB}) {
		t.Fatalf("GenerationsV3: %v %v", gens, err)
	}
	pagesOf := func(n int) int { return max(1, (n+1)/2) }
	pages := pagesOf(len(gens))
	for _, gen := range gens {
		snaps, err := c.SnapshotsV3(ctx, gen)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := fc.SnapshotsV3(ctx, gen)
		for i := range want {
			want[i].CreatedAt = time.Time{}
		}
		for i := range snaps {
			if snaps[i].CreatedAt.IsZero() {
				t.Fatalf("snapshot %v has no CreatedAt", snaps[i])
			}
			snaps[i].CreatedAt = time.Time{}
		}
		if !reflect.DeepEqual(snaps, want) {
			t.Fatalf("SnapshotsV3(%s):\n%v\nwant\n%v", gen, snaps, want)
		}
		segs, err := c.WALSegmentsV3(ctx, gen)
		if err != nil {
			t.Fatal(err)
		}
		wantSegs, _ := fc.WALSegmentsV3(ctx, gen)
		for i := range wantSegs {
			wantSegs[i].CreatedAt = time.Time{}
		}
		for i := range segs {
			if segs[i].CreatedAt.IsZero() {
				t.Fatalf("segment %v has no CreatedAt", segs[i])
			}
			segs[i].CreatedAt = time.Time{}
		}
		if !reflect.DeepEqual(segs, wantSegs) {
			t.Fatalf("WALSegmentsV3(%s):\n%v\nwant\n%v", gen, segs, wantSegs)
		}
		pages += pagesOf(len(snaps)) + pagesOf(len(segs))
	}
	return pages
}

// TestV3EmptyPath: with an empty path the v0.3 keys are generations/...
// at the bucket root (a bucket of its own here).
func TestV3EmptyPath(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		api := srv.rawClient()
		bucket := "s3test-v3-" + randomHex(t, 6)
		if _, err := api.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
			t.Fatalf("CreateBucket: %v", err)
		}
		t.Cleanup(func() { deleteBucket(t, api, bucket) })
		fx := buildV3Fixture(t)
		files := fx.files(t)
		uploadRounds(t, ctx, api, bucket, "", fx.root, files, []int{7, len(files) - 1}, "")
		cfg := srv.config("")
		cfg.Bucket = bucket
		c, err := NewReplicaClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		keys := strings.Join(rawKeys(t, ctx, api, bucket, ""), "\n") + "\n"
		if !strings.Contains(keys, "\ngenerations/"+v3GenA+"/snapshots/00000000.snapshot.lz4\n") {
			t.Fatalf("keys:\n%s", keys)
		}
		checkV3Listings(t, ctx, c, file.NewReplicaClient(fx.root))
		if v3RestoreHash(t, c, time.Time{}) != fx.states[len(fx.states)-1] {
			t.Fatal("latest restore differs from the database")
		}
	})
}

// TestV3MissingAndForeignKeys: a replica without v0.3 data lists empty;
// missing objects are os.ErrNotExist errors naming bucket and key; keys
// that are not v0.3 files are ignored.
func TestV3MissingAndForeignKeys(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv testServer) {
		ctx := testCtx(t)
		c := newTestClient(t, srv, nil)
		if gens, err := c.GenerationsV3(ctx); err != nil || len(gens) != 0 {
			t.Fatalf("GenerationsV3 of an empty replica: %v %v", gens, err)
		}
		if snaps, err := c.SnapshotsV3(ctx, v3GenA); err != nil || len(snaps) != 0 {
			t.Fatalf("SnapshotsV3 of an empty replica: %v %v", snaps, err)
		}
		if segs, err := c.WALSegmentsV3(ctx, v3GenA); err != nil || len(segs) != 0 {
			t.Fatalf("WALSegmentsV3 of an empty replica: %v %v", segs, err)
		}
		_, err := c.OpenSnapshotV3(ctx, v3GenA, 3)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenSnapshotV3 of a missing snapshot: %v", err)
		}
		checkOpError(t, err, c.Bucket(), "GetObject", litestream.V3SnapshotPath(c.Path(), v3GenA, 3))
		_, err = c.OpenWALSegmentV3(ctx, v3GenA, 1, 0x20)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenWALSegmentV3 of a missing segment: %v", err)
		}
		checkOpError(t, err, c.Bucket(), "GetObject", litestream.V3WALSegmentPath(c.Path(), v3GenA, 1, 0x20))

		api := srv.rawClient()
		g := c.Path() + "/generations/"
		for _, k := range []string{
			g + "not-a-generation/snapshots/00000000.snapshot.lz4",
			g + "0123456789ABCDEF/snapshots/00000000.snapshot.lz4",
			g + v3GenA + "/snapshots/00000001.snapshot.lz4",
			g + v3GenA + "/snapshots/notes.txt",
			g + v3GenA + "/snapshots/old/00000000.snapshot.lz4",
			g + v3GenA + "/wal/00000001_00000000.wal.lz4",
			g + v3GenA + "/wal/00000001_20.wal.lz4",
			g + v3GenA + "/wal/sub/00000001_00000020.wal.lz4",
		} {
			if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(c.Bucket()), Key: aws.String(k), Body: strings.NewReader("xyz")}); err != nil {
				t.Fatal(err)
			}
		}
		if gens, err := c.GenerationsV3(ctx); err != nil || !reflect.DeepEqual(gens, []string{v3GenA}) {
			t.Fatalf("GenerationsV3: %v %v", gens, err)
		}
		snaps, err := c.SnapshotsV3(ctx, v3GenA)
		if err != nil || len(snaps) != 1 || snaps[0].Index != 1 || snaps[0].Size != 3 || snaps[0].Generation != v3GenA {
			t.Fatalf("SnapshotsV3: %v %v", snaps, err)
		}
		segs, err := c.WALSegmentsV3(ctx, v3GenA)
		if err != nil || len(segs) != 1 || segs[0].Index != 1 || segs[0].Offset != 0 || segs[0].Size != 3 {
			t.Fatalf("WALSegmentsV3: %v %v", segs, err)
		}
	})
}

func v3RestoreHash(t *testing.T, client litestream.ReplicaClient, ts time.Time) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.db")
	_, err := litestream.Restore(testCtx(t), client, litestream.RestoreOptions{
		OutputPath:     out,
		Target:         litestream.RestoreTarget{Timestamp: ts},
		IntegrityCheck: "full",
	})
	if err != nil {
		t.Fatalf("restore from %s at %v: %v", client.Type(), ts, err)
	}
	return v3ContentHash(t, out)
}

// v3ContentHash checks a database's integrity and hashes its schema and
// every row, so equal logical content hashes equal whatever the pages.
func v3ContentHash(t *testing.T, dbPath string) string {
	t.Helper()
	db, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	var check string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check on %s: %q %v", dbPath, check, err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	h := sha256.New()
	var tables []string
	rows, err := tx.Query("SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %s %s\n", typ, name, text)
		if typ == "table" {
			tables = append(tables, name)
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		hashRows(t, tx, table, h)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashRows(t *testing.T, tx *sql.Tx, table string, h interface{ Write([]byte) (int, error) }) {
	t.Helper()
	// ORDER BY 1 is the primary key's first column, which also orders
	// WITHOUT ROWID tables (they have no rowid).
	rows, err := tx.Query(fmt.Sprintf("SELECT * FROM %q ORDER BY 1", table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %v\n", table, vals)
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(h, "%s: %d rows\n", table, n)
}
