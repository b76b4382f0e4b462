package config

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream/sftp"
)

func TestSFTPConfigFromSettings(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	no := false
	for _, tc := range []struct {
		name    string
		s       ReplicaSettings
		want    sftp.Config
		wantErr string
	}{
		{
			name: "url with password",
			s:    ReplicaSettings{URL: "sftp://alice:secret@example.com:2222/backups/db"},
			want: sftp.Config{Host: "example.com:2222", User: "alice", Password: "secret", Path: "/backups/db", ConcurrentWrites: true},
		},
		{
			name: "url with key, default port, path cleaned",
			s:    ReplicaSettings{URL: "sftp://alice@example.com//backups/./db/", KeyPath: "~/.ssh/id_ed25519"},
			want: sftp.Config{Host: "example.com", User: "alice", Path: "/backups/db", KeyPath: "/home/u/.ssh/id_ed25519", ConcurrentWrites: true},
		},
		{
			name: "user and password keys override the url's",
			s:    ReplicaSettings{URL: "sftp://alice:old@h/p", User: "bob", Password: "new"},
			want: sftp.Config{Host: "h", User: "bob", Password: "new", Path: "/p", ConcurrentWrites: true},
		},
		{
			name: "keys with every option",
			s: ReplicaSettings{
				Type: "sftp", Host: "h:22", User: "u", Path: "rel/db", KeyPath: "/k", KeyPassphrase: "pp",
				HostKey: "ssh-ed25519 AAAA", HostKeyPath: "~/kh", InsecureHostKey: true, ConcurrentWrites: &no,
			},
			want: sftp.Config{
				Host: "h:22", User: "u", Path: "rel/db", KeyPath: "/k", KeyPassphrase: "pp",
				HostKey: "ssh-ed25519 AAAA", HostKeyPath: "/home/u/kh", InsecureIgnoreHostKey: true,
			},
		},
		{name: "url and host", s: ReplicaSettings{URL: "sftp://u:secret@h/p", Host: "h"}, wantErr: "cannot specify url together with host or path"},
		{name: "url and path", s: ReplicaSettings{URL: "sftp://u:secret@h/p", Path: "p"}, wantErr: "cannot specify url together with host or path"},
		{name: "no host", s: ReplicaSettings{Type: "sftp", User: "u", Password: "secret"}, wantErr: "host required"},
		{name: "no host in url", s: ReplicaSettings{URL: "sftp://u:secret@/p"}, wantErr: "sftp://user@host"},
		{name: "no user", s: ReplicaSettings{URL: "sftp://h/p", Password: "secret"}, wantErr: "user required"},
		{name: "no credentials", s: ReplicaSettings{URL: "sftp://u@h/p"}, wantErr: "key-path or password required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var u = mustParseURL(t, tc.s.URL)
			got, err := sftpConfigFromSettings(&tc.s, u)
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
			// The factory is registered under the type and builds a client.
			c, err := NewReplicaClient(&tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := c.(*sftp.ReplicaClient); !ok {
				t.Fatalf("client is %T, want *sftp.ReplicaClient", c)
			}
		})
	}
}

// mustParseURL parses raw as the registry does; "" gives nil.
func mustParseURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	if raw == "" {
		return nil
	}
	u, err := ParseReplicaURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// checkErr wants an error containing want that leaks no credential (the
// tables use "secret" in every credential).
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks a credential: %v", err)
	}
}
