package config

import (
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream/gs"
)

func TestGSConfigFromSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       ReplicaSettings
		want    gs.Config
		wantErr string
	}{
		{name: "url", s: ReplicaSettings{URL: "gs://mybucket/backups/app"}, want: gs.Config{Bucket: "mybucket", Path: "backups/app"}},
		{name: "url without path", s: ReplicaSettings{URL: "gs://mybucket"}, want: gs.Config{Bucket: "mybucket"}},
		{name: "url path cleaned", s: ReplicaSettings{URL: "gs://mybucket//a/./b/"}, want: gs.Config{Bucket: "mybucket", Path: "a/b"}},
		{name: "url scheme case", s: ReplicaSettings{URL: "GS://mybucket/p"}, want: gs.Config{Bucket: "mybucket", Path: "p"}},
		{name: "keys", s: ReplicaSettings{Type: "gs", Bucket: "b", Path: "/db/"}, want: gs.Config{Bucket: "b", Path: "db"}},
		{name: "keys without path", s: ReplicaSettings{Type: "gs", Bucket: "b"}, want: gs.Config{Bucket: "b"}},
		{name: "url and bucket", s: ReplicaSettings{URL: "gs://b/p", Bucket: "b"}, wantErr: "cannot specify url together with bucket or path"},
		{name: "url and path", s: ReplicaSettings{URL: "gs://b/p", Path: "p"}, wantErr: "cannot specify url together with bucket or path"},
		{name: "no bucket in url", s: ReplicaSettings{URL: "gs:///p"}, wantErr: "bucket required"},
		{name: "no bucket key", s: ReplicaSettings{Type: "gs", Path: "p"}, wantErr: "bucket required"},
		{name: "port in url", s: ReplicaSettings{URL: "gs://b:443/p"}, wantErr: "gs://bucket/path"},
		{name: "user in url", s: ReplicaSettings{URL: "gs://me:secret@b/p"}, wantErr: "gs://bucket/path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewReplicaClient(&tc.s)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error leaks a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			gc, ok := c.(*gs.ReplicaClient)
			if !ok {
				t.Fatalf("client is %T, want *gs.ReplicaClient", c)
			}
			if gc.Bucket() != tc.want.Bucket || gc.Path() != tc.want.Path {
				t.Fatalf("bucket, path = %q, %q; want %q, %q", gc.Bucket(), gc.Path(), tc.want.Bucket, tc.want.Path)
			}
		})
	}
}
