package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type databaseRow struct {
	Path     string `json:"path"`
	Replica  string `json:"replica"`
	MetaPath string `json:"meta_path"`
}

func TestDatabasesCommand(t *testing.T) {
	f := newInspectFixture(t)
	var rows []databaseRow
	runJSON(t, &rows, "databases", "-json", "-config", f.cfg)
	want := []databaseRow{
		{f.single, "file", filepath.Join(f.dir, ".single.db-litestream")},
		{f.dirA, "file", filepath.Join(f.dir, "meta", "a.db-litestream")},
		{f.dirB, "file", filepath.Join(f.dir, "meta", "sub", "b.db-litestream")},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("databases -json:\n got %+v\nwant %+v", rows, want)
	}

	code, stdout, stderr := runCLI(t, "databases", "-config", f.cfg)
	if code != 0 {
		t.Fatal(stderr)
	}
	lines := checkTable(t, stdout, "path", "replica")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], f.dirA+" ") || !strings.HasSuffix(lines[1], " file") {
		t.Fatalf("text output:\n%s", stdout)
	}
}

// TestDatabasesReplicaTypes names each backend from the config alone:
// no client is built and no server is contacted.
func TestDatabasesReplicaTypes(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`dbs:
  - path: %[1]s/s3.db
    replica:
      url: s3://bucket/path
  - path: %[1]s/gs.db
    replica:
      type: gs
      bucket: b
  - path: %[1]s/dav.db
    replica:
      url: webdavs://127.0.0.1/dav
  - path: %[1]s/sftp.db
    replica:
      url: sftp://u@127.0.0.1/p
  - path: %[1]s/plain.db
    replica:
      path: %[1]s/replica
  - dir: %[1]s/nothing-here
    pattern: "*.db"
    watch: true
    replica:
      path: %[1]s/replica2
`, dir))
	if err := os.Mkdir(filepath.Join(dir, "nothing-here"), 0o755); err != nil {
		t.Fatal(err)
	}
	var rows []databaseRow
	runJSON(t, &rows, "databases", "-json", "-config", cfg)
	var got []string
	for _, r := range rows {
		got = append(got, filepath.Base(r.Path)+"="+r.Replica)
	}
	if want := "s3.db=s3 gs.db=gs dav.db=webdav sftp.db=sftp plain.db=file"; strings.Join(got, " ") != want {
		t.Fatalf("got %s, want %s", strings.Join(got, " "), want)
	}
}

func TestDatabasesBadInput(t *testing.T) {
	f := newInspectFixture(t)
	expectError(t, []string{"too many arguments"}, "databases", "-config", f.cfg, f.single)
	expectError(t, []string{"read config", "no such file"}, "databases", "-config", filepath.Join(f.dir, "nope.yml"))
	bad := writeConfig(t, t.TempDir(), fmt.Sprintf("dbs:\n  - dir: %s\n    replica:\n      path: /tmp/x\n", f.dir))
	expectError(t, []string{"dir requires pattern"}, "databases", "-config", bad)
}
