package config

import (
	"reflect"
	"testing"

	"github.com/sqlitebackup/litestream/webdav"
)

func TestWebDAVConfigFromSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       ReplicaSettings
		want    webdav.Config
		wantErr string
	}{
		{
			name: "webdav url is http",
			s:    ReplicaSettings{URL: "webdav://alice:secret@dav.example.com:8080/backups/db"},
			want: webdav.Config{URL: "http://dav.example.com:8080", Username: "alice", Password: "secret", Path: "/backups/db"},
		},
		{
			name: "webdavs url is https",
			s:    ReplicaSettings{URL: "webdavs://dav.example.com/db", WebDAVUsername: "bob", WebDAVPassword: "secret"},
			want: webdav.Config{URL: "https://dav.example.com", Username: "bob", Password: "secret", Path: "/db"},
		},
		{
			name: "credential keys override the url's",
			s:    ReplicaSettings{URL: "webdavs://alice:old@h/db", WebDAVUsername: "bob", WebDAVPassword: "new"},
			want: webdav.Config{URL: "https://h", Username: "bob", Password: "new", Path: "/db"},
		},
		{
			name: "keys",
			s:    ReplicaSettings{Type: "webdav", WebDAVURL: "https://h/remote.php/dav/files/u", WebDAVUsername: "u", WebDAVPassword: "secret", Path: "db"},
			want: webdav.Config{URL: "https://h/remote.php/dav/files/u", Username: "u", Password: "secret", Path: "db"},
		},
		{
			name: "webdavs type alias with keys",
			s:    ReplicaSettings{Type: "webdavs", WebDAVURL: "https://h", Path: "db"},
			want: webdav.Config{URL: "https://h", Path: "db"},
		},
		{name: "url and webdav-url", s: ReplicaSettings{URL: "webdav://u:secret@h/p", WebDAVURL: "http://h"}, wantErr: "cannot specify url together with webdav-url or path"},
		{name: "url and path", s: ReplicaSettings{URL: "webdav://u:secret@h/p", Path: "p"}, wantErr: "cannot specify url together with webdav-url or path"},
		{name: "no server", s: ReplicaSettings{Type: "webdav", Path: "p", WebDAVPassword: "secret"}, wantErr: "webdav-url required"},
		{name: "no host in url", s: ReplicaSettings{URL: "webdavs://u:secret@/p"}, wantErr: "webdav[s]://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := webdavConfigFromSettings(&tc.s, mustParseURL(t, tc.s.URL))
			if tc.wantErr != "" {
				checkErr(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("config =\n%+v\nwant\n%+v", got, tc.want)
			}
			c, err := NewReplicaClient(&tc.s)
			if err != nil {
				t.Fatal(err)
			}
			wc, ok := c.(*webdav.ReplicaClient)
			if !ok {
				t.Fatalf("client is %T, want *webdav.ReplicaClient", c)
			}
			if wc.Type() != "webdav" {
				t.Fatalf("Type() = %q, want webdav for both schemes", wc.Type())
			}
		})
	}
}
