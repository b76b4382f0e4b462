package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream/nats"
)

func TestNATSConfigFromSettings(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	five := 5
	wait := Duration(3 * time.Second)
	timeout := Duration(20 * time.Second)
	for _, tc := range []struct {
		name    string
		s       ReplicaSettings
		want    nats.Config
		wantErr string
	}{
		{
			name: "url with bucket",
			s:    ReplicaSettings{URL: "nats://nats.example.com:4222/backups"},
			want: nats.Config{URL: "nats://nats.example.com:4222", Bucket: "backups"},
		},
		{
			name: "url with bucket, prefix and user",
			s:    ReplicaSettings{URL: "nats://alice:secret@h/backups/app//db/"},
			want: nats.Config{URL: "nats://h", Bucket: "backups", Path: "app/db", Username: "alice", Password: "secret"},
		},
		{
			name: "url user without password is a token",
			s:    ReplicaSettings{URL: "nats://secrettoken@h/b"},
			want: nats.Config{URL: "nats://h", Bucket: "b", Token: "secrettoken"},
		},
		{
			name: "credential keys override the url's",
			s:    ReplicaSettings{URL: "nats://alice:old@h/b", Username: "bob", Password: "new"},
			want: nats.Config{URL: "nats://h", Bucket: "b", Username: "bob", Password: "new"},
		},
		{
			name: "bucket key stands in for a url without one; path key is the prefix",
			s:    ReplicaSettings{URL: "nats://h", Bucket: "b", Path: "/db/"},
			want: nats.Config{URL: "nats://h", Bucket: "b", Path: "db"},
		},
		{
			name: "same bucket in url and key",
			s:    ReplicaSettings{URL: "nats://h/b", Bucket: "b"},
			want: nats.Config{URL: "nats://h", Bucket: "b"},
		},
		{
			name: "keys only: default server",
			s:    ReplicaSettings{Type: "nats", Bucket: "b"},
			want: nats.Config{Bucket: "b"},
		},
		{
			name: "every key",
			s: ReplicaSettings{
				URL: "nats://h/b", JWT: "eyJ", Seed: "SUAB", Creds: "~/x.creds", NKey: "~/user.nk", Token: "t",
				TLS: true, RootCAs: []string{"~/ca.pem", "/etc/ca2.pem"}, ClientCert: "~/c.pem", ClientKey: "/k.pem",
				MaxReconnects: &five, ReconnectWait: &wait, Timeout: &timeout,
			},
			want: nats.Config{
				URL: "nats://h", Bucket: "b", JWT: "eyJ", Seed: "SUAB", Creds: "/home/u/x.creds", NKey: "/home/u/user.nk", Token: "t",
				TLS: true, RootCAs: []string{"/home/u/ca.pem", "/etc/ca2.pem"}, ClientCert: "/home/u/c.pem", ClientKey: "/k.pem",
				MaxReconnects: &five, ReconnectWait: 3 * time.Second, Timeout: 20 * time.Second,
			},
		},
		{
			name: "nkey seed left as is",
			s:    ReplicaSettings{Type: "nats", Bucket: "b", NKey: "SUAAAAAA"},
			want: nats.Config{Bucket: "b", NKey: "SUAAAAAA"},
		},
		{name: "no bucket", s: ReplicaSettings{URL: "nats://u:secret@h"}, wantErr: "bucket required"},
		{name: "bucket conflict", s: ReplicaSettings{URL: "nats://u:secret@h/a", Bucket: "b"}, wantErr: `bucket "a" in url conflicts with bucket: "b"`},
		{name: "prefix twice", s: ReplicaSettings{URL: "nats://u:secret@h/a/p", Path: "q"}, wantErr: "cannot specify a path both in url and in path"},
		{name: "cert without key", s: ReplicaSettings{URL: "nats://u:secret@h/a", ClientCert: "c.pem"}, wantErr: "client-cert and client-key must be set together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := natsConfigFromSettings(&tc.s, mustParseURL(t, tc.s.URL))
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
			nc, ok := c.(*nats.ReplicaClient)
			if !ok {
				t.Fatalf("client is %T, want *nats.ReplicaClient", c)
			}
			if nc.Bucket() != tc.want.Bucket || nc.Path() != tc.want.Path {
				t.Fatalf("client bucket, path = %q, %q", nc.Bucket(), nc.Path())
			}
		})
	}
}
