package config

import (
	"github.com/sqlitebackup/litestream/agecrypt"
	"strings"
	"testing"
	"time"
)

func TestParseExpandsEnvironment(t *testing.T) {
	t.Setenv("BACKUP_DIR", "/var/backups")
	t.Setenv("INTERVAL", "250ms")
	src := "dbs:\n  - path: /data/app.db\n    monitor-interval: ${INTERVAL}\n    replica:\n      path: $BACKUP_DIR/app\n"
	c, err := Parse([]byte(src), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DBs[0].Replica.Path; got != "/var/backups/app" {
		t.Fatalf("replica path %q", got)
	}
	if got := c.DBs[0].MonitorInterval.D(); got != 250*time.Millisecond {
		t.Fatalf("monitor-interval %s", got)
	}
	// Without expansion the text is taken literally.
	c, err = Parse([]byte("dbs:\n  - path: /data/app.db\n    replica:\n      path: /b/$BACKUP_DIR\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.DBs[0].Replica.Path; got != "/b/$BACKUP_DIR" {
		t.Fatalf("unexpanded path %q", got)
	}
}

func TestParseInheritsGlobalReplicaSettings(t *testing.T) {
	src := `
access-key-id: AKID
region: eu-west-1
sync-interval: 5s
part-size: 10MB
dbs:
  - path: /data/a.db
    replica:
      url: s3://bucket/a
  - path: /data/b.db
    replica:
      url: s3://bucket/b
      region: us-east-2
`
	c, err := Parse([]byte(src), false)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.DBs[0].Replica, c.DBs[1].Replica
	if a.AccessKeyID != "AKID" || a.Region != "eu-west-1" || a.SyncInterval.D() != 5*time.Second {
		t.Fatalf("a did not inherit: %+v", a)
	}
	if b.Region != "us-east-2" {
		t.Fatalf("b's own region was overridden: %q", b.Region)
	}
	if a.PartSize != nil {
		t.Fatal("part-size must not be inherited (as upstream)")
	}
	if a.URL != "s3://bucket/a" || a.Path != "" {
		t.Fatalf("identity keys changed: %+v", a)
	}
}

func TestParseSizesAndPaths(t *testing.T) {
	for in, want := range map[string]int64{"5242880": 5242880, "5MB": 5_000_000, "5MiB": 5 << 20, "1.5KiB": 1536} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Fatalf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "five", "-1", "5XB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Fatalf("ParseSize(%q) succeeded", bad)
		}
	}
	p, err := CleanDBPath("sqlite:///data/app.db")
	if err != nil || p != "/data/app.db" {
		t.Fatalf("CleanDBPath = %q, %v", p, err)
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	_, err := Parse([]byte("dbs:\n  - path: /a.db\n    replica:\n      typo-key: 1\n"), false)
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "typo-key") {
		t.Fatalf("error %v", err)
	}
	_, err = Parse([]byte("dbs:\n  - path: /a.db\n    busy-timeout: 3 seconds\n    replica:\n      path: /r\n"), false)
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("error %v", err)
	}
	_, err = Parse([]byte("dbs:\n  - path: /a.db\n    replica:\n      path: /r\n      age: {}\n"), false)
	if err == nil || !strings.Contains(err.Error(), "age") {
		t.Fatalf("error %v", err)
	}
}

func TestReplicaURLs(t *testing.T) {
	c, err := NewReplicaClient(&ReplicaSettings{URL: "file:///tmp/replica"})
	if err != nil || c.Type() != "file" {
		t.Fatalf("file URL: %v %v", c, err)
	}
	if _, err := NewReplicaClient(&ReplicaSettings{URL: "file:///tmp/r", Path: "/tmp/r"}); err == nil {
		t.Fatal("url and path together must fail")
	}
	if _, err := NewReplicaClient(&ReplicaSettings{URL: "file://host/tmp/r"}); err == nil {
		t.Fatal("file URL with a host must fail")
	}
	if _, err := ParseReplicaURL("/just/a/path"); err == nil {
		t.Fatal("a path is not a URL")
	}
}

func TestParseReplicaURLRedactsPassword(t *testing.T) {
	_, err := ParseReplicaURL("sftp://u:topsecret@host:badport/p")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("error %v leaks the password or is nil", err)
	}
	u, err := ParseReplicaURL("s3://arn:aws:s3:us-east-1:123456789012:accesspoint/ap/db")
	if err != nil || u.Scheme != "s3" || u.Opaque == "" {
		t.Fatalf("access point ARN: %v %v", u, err)
	}
}

func TestAgeReplica(t *testing.T) {
	c, err := NewReplicaClient(&ReplicaSettings{URL: "file:///tmp/r", Age: &AgeSettings{
		Identities: []string{"AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*agecrypt.Client); !ok {
		t.Fatalf("client %T is not encrypting", c)
	}
	_, err = NewReplicaClient(&ReplicaSettings{URL: "file:///tmp/r", Age: &AgeSettings{Identities: []string{"AGE-SECRET-KEY-1BOGUSBOGUS"}}})
	if err == nil || strings.Contains(err.Error(), "BOGUS") {
		t.Fatalf("bad identity: %v (must fail without echoing the key)", err)
	}
}

func TestLeaseSettings(t *testing.T) {
	c, err := Parse([]byte("lease: {ttl: 10s}\ndbs:\n  - path: /a.db\n    replica:\n      path: /r\n      lease: {ttl: 2s, wait: false}\n  - path: /b.db\n    replica:\n      path: /r2\n"), false)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.DBs[0].ReplicaSettings()
	if a.Lease == nil || a.Lease.TTL.D() != 2*time.Second || a.Lease.Wait == nil || *a.Lease.Wait {
		t.Fatalf("dbs[0] lease = %+v", a.Lease)
	}
	b, _ := c.DBs[1].ReplicaSettings()
	if b.Lease == nil || b.Lease.TTL.D() != 10*time.Second || b.Lease.Wait != nil {
		t.Fatalf("dbs[1] lease (inherited) = %+v", b.Lease)
	}
	for _, bad := range []string{"lease: {ttl: 500ms}", "lease: {ttl: 0s}", "lease: {ttll: 5s}"} {
		_, err := Parse([]byte("dbs:\n  - path: /a.db\n    replica:\n      path: /r\n      "+bad+"\n"), false)
		if err == nil || !strings.Contains(err.Error(), "ttl") {
			t.Fatalf("%s: error %v, want one about lease ttl", bad, err)
		}
	}
}

func TestParseEmptyReplicaEntry(t *testing.T) {
	for _, src := range []string{"dbs:\n  - path: /a.db\n    replicas:\n      -\n", "dbs:\n  - path: /a.db\n    replicas: [~]\n"} {
		if _, err := Parse([]byte(src), false); err == nil {
			t.Fatalf("%q parsed without error", src)
		}
	}
}
