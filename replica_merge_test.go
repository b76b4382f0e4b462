package litestream_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
	"github.com/sqlitebackup/litestream/ltxfile"
)

// call is one request a recordingClient saw.
type call struct {
	level            int
	minTXID, maxTXID ltx.TXID
}

// recordingClient records uploads and downloads and can make uploads fail
// half-way through their body.
type recordingClient struct {
	litestream.ReplicaClient
	mu       sync.Mutex
	writes   []call
	opens    []call
	failNext bool // the next upload's body fails after a few bytes
	wrote    chan call
}

func newRecordingClient(c litestream.ReplicaClient) *recordingClient {
	return &recordingClient{ReplicaClient: c, wrote: make(chan call, 1000)}
}

func (c *recordingClient) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	c.mu.Lock()
	fail := c.failNext
	c.failNext = false
	c.mu.Unlock()
	if fail {
		r = &failingReader{r: r, left: 100}
	}
	info, err := c.ReplicaClient.WriteLTXFile(ctx, level, minTXID, maxTXID, r)
	if err == nil {
		c.mu.Lock()
		c.writes = append(c.writes, call{level, minTXID, maxTXID})
		c.mu.Unlock()
		c.wrote <- call{level, minTXID, maxTXID}
	}
	return info, err
}

func (c *recordingClient) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opens = append(c.opens, call{level, minTXID, maxTXID})
	c.mu.Unlock()
	return c.ReplicaClient.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
}

// take returns and forgets the uploads and downloads recorded so far.
func (c *recordingClient) take() (writes, opens []call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes, opens = c.writes, c.opens
	c.writes, c.opens = nil, nil
	return writes, opens
}

var errBodyCut = errors.New("upload body cut off")

type failingReader struct {
	r    io.Reader
	left int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, errBodyCut
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	return n, err
}

// newManualHarness is a harness whose DB is never opened: no background
// sync or upload loop runs, so the test decides exactly when local files
// are written (DB.Sync) and when an upload pass runs (Replica.Sync).
func newManualHarness(t *testing.T) (*harness, *recordingClient) {
	t.Helper()
	dir := t.TempDir()
	h := &harness{t: t, dir: dir, dbPath: filepath.Join(dir, "app.db"), states: map[ltx.TXID]string{}, ctx: context.Background()}
	h.app = openApp(t, h.dbPath, 4096)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.client = file.NewReplicaClient(filepath.Join(dir, "replica"))
	rec := newRecordingClient(h.client)
	h.db = litestream.NewDB(h.dbPath)
	h.db.MonitorInterval = 0
	litestream.NewReplica(h.db, rec)
	t.Cleanup(func() { h.db.Close(context.Background()) })
	return h, rec
}

// localSync writes one level-0 file with a few new rows and records the
// content at its TXID.
func localSync(t *testing.T, h *harness) ltx.TXID {
	t.Helper()
	insertRows(t, h, 2)
	if err := h.db.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	txid := h.db.Pos()
	h.states[txid] = contentHash(t, h.dbPath)
	return txid
}

func uploadPass(t *testing.T, h *harness) {
	t.Helper()
	if err := h.db.Replica.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
}

// keepReachableStates drops the recorded states that no replica file ends
// at: TXIDs inside a merged file are not restore points any more.
func keepReachableStates(t *testing.T, h *harness) {
	t.Helper()
	ends := map[ltx.TXID]bool{}
	for _, info := range allFiles(t, h) {
		ends[info.MaxTXID] = true
	}
	for txid := range h.states {
		if !ends[txid] {
			delete(h.states, txid)
		}
	}
}

func wantCalls(t *testing.T, what string, got []call, want ...call) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}
}

func levelFiles(t *testing.T, h *harness, level int) []*ltx.FileInfo {
	t.Helper()
	infos, err := litestream.LTXFileInfos(h.ctx, h.client, level, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	return infos
}

func readHeaderOf(t *testing.T, open func() (io.ReadCloser, error)) ltx.Header {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	hdr, err := ltxfile.Verify(rc) // the whole file, checksum included
	if err != nil {
		t.Fatal(err)
	}
	return hdr
}

// TestMergeUploadsPendingFilesAsOne: the level-0 files written since the
// last pass go to the replica as one file covering their TXIDs, with the
// newest piece's header (timestamp, WAL position, salts) and its own TXID
// range; restores at every file boundary, by TXID and by timestamp, give
// what was committed then, and the replica verifies clean.
func TestMergeUploadsPendingFilesAsOne(t *testing.T) {
	h, rec := newManualHarness(t)
	localSync(t, h)
	uploadPass(t, h)
	writes, _ := rec.take()
	wantCalls(t, "first pass", writes, call{litestream.SnapshotLevel, 1, 1})

	for i := 0; i < 5; i++ {
		localSync(t, h)
	}
	uploadPass(t, h)
	writes, _ = rec.take()
	wantCalls(t, "pass after 5 syncs", writes, call{0, 2, 6})

	remote := readHeaderOf(t, func() (io.ReadCloser, error) { return h.client.OpenLTXFile(h.ctx, 0, 2, 6, 0, 0) })
	local := readHeaderOf(t, func() (io.ReadCloser, error) { return os.Open(h.db.LTXPath(6, 6)) })
	if remote.MinTXID != 2 || remote.MaxTXID != 6 {
		t.Fatalf("merged header TXIDs %s-%s, want 2-6", remote.MinTXID, remote.MaxTXID)
	}
	remote.MinTXID = local.MinTXID
	if remote != local {
		t.Fatalf("merged header %+v differs from its newest piece's %+v beyond MinTXID", remote, local)
	}
	if got := h.restore(litestream.RestoreTarget{}); got != h.states[6] {
		t.Fatal("latest restore differs from the content at TXID 6")
	}
	if _, err := litestream.Restore(h.ctx, h.client, litestream.RestoreOptions{OutputPath: filepath.Join(t.TempDir(), "x.db"), Target: litestream.RestoreTarget{TXID: 4}}); !errors.Is(err, litestream.ErrTxNotAvailable) {
		t.Fatalf("restore inside a merged file: %v, want ErrTxNotAvailable", err)
	}

	// One file per pass stays unchanged; then another merged run.
	localSync(t, h)
	uploadPass(t, h)
	for i := 0; i < 3; i++ {
		localSync(t, h)
	}
	uploadPass(t, h)
	writes, _ = rec.take()
	wantCalls(t, "later passes", writes, call{0, 7, 7}, call{0, 8, 10})
	single, err := os.ReadFile(h.db.LTXPath(7, 7))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := h.client.OpenLTXFile(h.ctx, 0, 7, 7, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	uploaded, _ := io.ReadAll(rc)
	rc.Close()
	if string(uploaded) != string(single) {
		t.Fatal("a single pending file was not uploaded byte for byte")
	}

	keepReachableStates(t, h)
	h.verifyAll()
	rep, err := litestream.Verify(h.ctx, h.client, litestream.VerifyOptions{Full: true, TempDir: t.TempDir()})
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

// TestMergeFirstFileGoesToSnapshotLevel: on an empty replica the first
// file (a full image) goes alone to the snapshot level; the files after
// it are merged into level 0.
func TestMergeFirstFileGoesToSnapshotLevel(t *testing.T) {
	h, rec := newManualHarness(t)
	for i := 0; i < 4; i++ {
		localSync(t, h)
	}
	uploadPass(t, h)
	writes, _ := rec.take()
	wantCalls(t, "first pass", writes, call{litestream.SnapshotLevel, 1, 1}, call{0, 2, 4})
	if l0 := levelFiles(t, h, 0); len(l0) != 1 || l0[0].MinTXID != 2 {
		t.Fatalf("level 0: %v", planNames(l0))
	}
	keepReachableStates(t, h)
	h.verifyAll()
}

// TestMergeCompactionReadsLocalPieces: compaction reads a merged level-0
// file from the local files it was made of, never from the replica,
// unless they are gone; the result restores exactly. Level-0 retention
// then deletes the local pieces of the merged files it deletes.
func TestMergeCompactionReadsLocalPieces(t *testing.T) {
	h, rec := newManualHarness(t)
	localSync(t, h)
	uploadPass(t, h)
	for pass := 0; pass < 3; pass++ {
		for i := 0; i <= pass; i++ {
			localSync(t, h) // files 2, 3-4, 5-7
		}
		uploadPass(t, h)
	}
	r := h.db.Replica
	rec.take()
	written, err := r.Compact(h.ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != 1 || written[0].MinTXID != 2 || written[0].MaxTXID != 7 {
		t.Fatalf("compaction wrote %v, want one file 2-7", planNames(written))
	}
	_, opens := rec.take()
	wantCalls(t, "downloads by the compaction", opens)

	// Without the local pieces of 8-9, compaction downloads that file.
	localSync(t, h)
	localSync(t, h)
	uploadPass(t, h)
	localSync(t, h)
	localSync(t, h)
	uploadPass(t, h) // 10-11, whose pieces stay local
	for _, txid := range []ltx.TXID{8, 9} {
		if err := os.Remove(h.db.LTXPath(txid, txid)); err != nil {
			t.Fatal(err)
		}
	}
	rec.take()
	if _, err := r.Compact(h.ctx, 1); err != nil {
		t.Fatal(err)
	}
	_, opens = rec.take()
	if len(opens) == 0 {
		t.Fatal("compaction did not download 8-9, whose pieces are gone")
	}
	for _, c := range opens { // its header, then the whole file
		if c != (call{0, 8, 9}) {
			t.Fatalf("second compaction downloaded %v; only 8-9 lacks its local pieces", opens)
		}
	}

	// A snapshot of the whole chain downloads nothing from level 0 either.
	if _, err := r.Snapshot(h.ctx); err != nil {
		t.Fatal(err)
	}
	_, opens = rec.take()
	for _, c := range opens {
		if c.level == 0 {
			t.Fatalf("snapshot downloaded level-0 file %v", c)
		}
	}

	// What compaction produced restores exactly without level 0.
	keepReachableStates(t, h)
	if err := h.client.DeleteLTXFiles(h.ctx, levelFiles(t, h, 0)); err != nil {
		t.Fatal(err)
	}
	if got := h.restore(litestream.RestoreTarget{TXID: 7}); got != h.states[7] {
		t.Fatal("restore of level-1 file 2-7 differs from TXID 7")
	}
	if got := h.restore(litestream.RestoreTarget{}); got != h.states[11] {
		t.Fatal("latest restore differs from TXID 11")
	}
}

// TestMergeL0RetentionRemovesLocalPieces: once level-0 retention deletes
// a merged replica file, the local files it was made of go too, the
// newest local file stays, and later uploads continue normally.
func TestMergeL0RetentionRemovesLocalPieces(t *testing.T) {
	h, _ := newManualHarness(t)
	localSync(t, h)
	uploadPass(t, h)
	for pass := 0; pass < 3; pass++ {
		localSync(t, h)
		localSync(t, h) // 2-3, 4-5, 6-7
		uploadPass(t, h)
	}
	r := h.db.Replica
	if _, err := r.Compact(h.ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.EnforceL0Retention(h.ctx, time.Now().Add(time.Hour), time.Minute, true); err != nil {
		t.Fatal(err)
	}
	var l0 []string
	for _, info := range levelFiles(t, h, 0) {
		l0 = append(l0, ltx.FormatFilename(info.MinTXID, info.MaxTXID))
	}
	if strings.Join(l0, " ") != ltx.FormatFilename(6, 7) {
		t.Fatalf("replica level 0 after retention: %v, want only the newest file 6-7", l0)
	}
	entries, err := os.ReadDir(h.db.LTXDir())
	if err != nil {
		t.Fatal(err)
	}
	var local []string
	for _, e := range entries {
		local = append(local, e.Name())
	}
	if want := ltx.FormatFilename(6, 6) + " " + ltx.FormatFilename(7, 7); strings.Join(local, " ") != want {
		t.Fatalf("local level-0 files after retention: %v, want %s", local, want)
	}
	localSync(t, h)
	uploadPass(t, h)
	keepReachableStates(t, h)
	h.verifyAll()
}

// TestMergeUploadFailureRetriesSameRun: a merged upload whose body fails
// half-way leaves nothing in the replica; the next pass succeeds and
// sends the same run again first (so a late copy of the failed upload
// could only be the same file), then what came after it.
func TestMergeUploadFailureRetriesSameRun(t *testing.T) {
	h, rec := newManualHarness(t)
	localSync(t, h)
	uploadPass(t, h)
	for i := 0; i < 3; i++ {
		localSync(t, h)
	}
	rec.mu.Lock()
	rec.failNext = true
	rec.mu.Unlock()
	err := h.db.Replica.Sync(h.ctx)
	if !errors.Is(err, errBodyCut) {
		t.Fatalf("pass with a failing upload: %v, want %v", err, errBodyCut)
	}
	if l0 := levelFiles(t, h, 0); len(l0) != 0 {
		t.Fatalf("level 0 after a failed upload: %v", planNames(l0))
	}
	_ = filepath.WalkDir(filepath.Join(h.dir, "replica"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".tmp") {
			t.Errorf("temporary file left in the replica: %s", p)
		}
		return nil
	})
	rec.take()
	localSync(t, h)
	uploadPass(t, h)
	writes, _ := rec.take()
	wantCalls(t, "pass after the failure", writes, call{0, 2, 4}, call{0, 5, 5})
	keepReachableStates(t, h)
	h.verifyAll()
}

// TestMergeCaps: a run stops at ltxfile.MaxCompactInputs files and at the
// byte cap; the rest goes in further uploads of the same pass.
func TestMergeCaps(t *testing.T) {
	h, rec := newManualHarness(t)
	localSync(t, h)
	uploadPass(t, h)
	n := ltxfile.MaxCompactInputs + 3
	for i := 0; i < n; i++ {
		insertRows(t, h, 1)
		if err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	rec.take()
	uploadPass(t, h)
	writes, _ := rec.take()
	last := ltx.TXID(n + 1)
	wantCalls(t, "count cap", writes, call{0, 2, ltx.TXID(ltxfile.MaxCompactInputs + 1)}, call{0, ltx.TXID(ltxfile.MaxCompactInputs + 2), last})

	// A byte cap below two files' size: every file goes alone.
	defer litestream.SetMaxMergeBytes(1)()
	localSync(t, h)
	localSync(t, h)
	uploadPass(t, h)
	writes, _ = rec.take()
	wantCalls(t, "byte cap", writes, call{0, last + 1, last + 1}, call{0, last + 2, last + 2})
	h.states = map[ltx.TXID]string{last + 2: h.states[last+2]}
	h.verifyAll()
}

// TestMergeUploadCountBound: the upload loop with a long sync-interval
// sends N level-0 files written within one interval as one upload.
func TestMergeUploadCountBound(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "app.db")
	app := openApp(t, dbPath, 4096)
	mustExec(t, app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	client := file.NewReplicaClient(filepath.Join(dir, "replica"))
	rec := newRecordingClient(client)
	db := litestream.NewDB(dbPath)
	db.MonitorInterval = 0
	r := litestream.NewReplica(db, rec)
	r.SyncInterval = time.Hour
	// The first change after idle is sent at once.
	mustExec(t, app, "INSERT INTO t (v) VALUES (randomblob(100))")
	if err := db.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := db.Open(); err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	select {
	case c := <-rec.wrote:
		if c != (call{litestream.SnapshotLevel, 1, 1}) {
			t.Fatalf("first upload %v", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first change was not uploaded at once")
	}
	const n = 20
	for i := 0; i < n; i++ {
		mustExec(t, app, "INSERT INTO t (v) VALUES (randomblob(100))")
		if err := db.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(context.Background()); err != nil { // the final pass
		t.Fatal(err)
	}
	writes, _ := rec.take()
	wantCalls(t, "uploads", writes, call{litestream.SnapshotLevel, 1, 1}, call{0, 2, n + 1})
}

// TestMergeLeaseRecognisesOwnMergedFile: a restarted replicator that
// takes the lease again recognises the merged file ending at the
// replica's newest TXID as its own and continues without a full image.
func TestMergeLeaseRecognisesOwnMergedFile(t *testing.T) {
	h := newHarness(t, 4096, nil)
	mustExec(t, h.app, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
	h.sync()
	for i := 0; i < 3; i++ {
		insertRows(t, h, 2)
		if err := h.db.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.db.Replica.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	pos := h.db.Pos()
	if l0 := levelFiles(t, h, 0); len(l0) != 1 || l0[0].MinTXID == l0[0].MaxTXID || l0[0].MaxTXID != pos {
		t.Fatalf("want one merged level-0 file ending at %s, got %v", pos, planNames(l0))
	}
	if err := h.db.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.open(nil)
	insertRows(t, h, 2)
	txid := h.sync()
	if txid != pos+1 {
		t.Fatalf("after restart the next TXID is %s, want %s", txid, pos+1)
	}
	if _, err := os.Stat(h.db.LTXPath(2, 2)); err != nil {
		t.Fatalf("local history dropped after restart (merged file not recognised as ours): %v", err)
	}
	if snaps := levelFiles(t, h, litestream.SnapshotLevel); len(snaps) != 1 {
		t.Fatalf("snapshots %v: a full image was written", planNames(snaps))
	}
	keepReachableStates(t, h)
	h.verifyAll()
}

// TestMergeFollow: a follower applies merged level-0 files as they come
// and ends with the primary's content.
func TestMergeFollow(t *testing.T) {
	h, _ := newManualHarness(t)
	localSync(t, h)
	uploadPass(t, h)
	out := filepath.Join(t.TempDir(), "follow.db")
	s := startFollow(t, h.client, out)
	s.waitFor(1)
	for pass := 0; pass < 3; pass++ {
		localSync(t, h)
		localSync(t, h)
		uploadPass(t, h)
		s.waitFor(h.db.Pos())
	}
	s.stop()
	if got := contentHash(t, out); got != h.states[h.db.Pos()] {
		t.Fatal("follower output differs from the primary")
	}
}
