package config

import (
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream/abs"
)

func TestABSConfigFromSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       ReplicaSettings
		env     map[string]string
		want    abs.Config
		wantErr string
	}{
		{
			name: "url with account",
			s:    ReplicaSettings{URL: "abs://acct@cont/backups/app", AccountKey: "KEY"},
			want: abs.Config{AccountName: "acct", AccountKey: "KEY", Container: "cont", Path: "backups/app"},
		},
		{
			name: "url without account, account-name key",
			s:    ReplicaSettings{URL: "abs://cont//a/./b/", AccountName: "acct", SASToken: "sv=1&sig=x"},
			want: abs.Config{AccountName: "acct", SASToken: "sv=1&sig=x", Container: "cont", Path: "a/b"},
		},
		{
			name: "account-name overrides url account",
			s:    ReplicaSettings{URL: "abs://fromurl@cont/p", AccountName: "fromkey", AccountKey: "KEY"},
			want: abs.Config{AccountName: "fromkey", AccountKey: "KEY", Container: "cont", Path: "p"},
		},
		{
			name: "keys with endpoint (Azurite)",
			s: ReplicaSettings{Type: "abs", Bucket: "cont", Path: "/db/", AccountName: "devstoreaccount1", AccountKey: "KEY",
				Endpoint: "http://127.0.0.1:10000/devstoreaccount1"},
			want: abs.Config{AccountName: "devstoreaccount1", AccountKey: "KEY", Container: "cont", Path: "db",
				Endpoint: "http://127.0.0.1:10000/devstoreaccount1"},
		},
		{
			name: "url with endpoint key",
			s:    ReplicaSettings{URL: "abs://acct@cont/p", SASToken: "sv=1", Endpoint: "https://acct.blob.core.usgovcloudapi.net"},
			want: abs.Config{AccountName: "acct", SASToken: "sv=1", Container: "cont", Path: "p", Endpoint: "https://acct.blob.core.usgovcloudapi.net"},
		},
		{
			name: "env fallbacks",
			s:    ReplicaSettings{URL: "abs://acct@cont/p"},
			env:  map[string]string{"LITESTREAM_AZURE_ACCOUNT_KEY": "ENVKEY", "LITESTREAM_AZURE_SAS_TOKEN": "ENVSAS"},
			want: abs.Config{AccountName: "acct", AccountKey: "ENVKEY", SASToken: "ENVSAS", Container: "cont", Path: "p"},
		},
		{
			name: "config wins over env",
			s:    ReplicaSettings{URL: "abs://acct@cont/p", AccountKey: "KEY", SASToken: "SAS"},
			env:  map[string]string{"LITESTREAM_AZURE_ACCOUNT_KEY": "ENVKEY", "LITESTREAM_AZURE_SAS_TOKEN": "ENVSAS"},
			want: abs.Config{AccountName: "acct", AccountKey: "KEY", SASToken: "SAS", Container: "cont", Path: "p"},
		},
		{name: "url and bucket", s: ReplicaSettings{URL: "abs://acct@cont/p", Bucket: "cont"}, wantErr: "cannot specify url together with bucket or path"},
		{name: "url and path", s: ReplicaSettings{URL: "abs://acct@cont/p", Path: "p"}, wantErr: "cannot specify url together with bucket or path"},
		{name: "no container in url", s: ReplicaSettings{URL: "abs://acct@/p"}, wantErr: "container required"},
		{name: "no bucket key", s: ReplicaSettings{Type: "abs", AccountName: "a", Path: "p"}, wantErr: "container required"},
		{name: "port in url", s: ReplicaSettings{URL: "abs://cont:10000/p"}, wantErr: "set endpoint"},
		{name: "key in url", s: ReplicaSettings{URL: "abs://acct:secretkey@cont/p"}, wantErr: "must not contain a key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LITESTREAM_AZURE_ACCOUNT_KEY", "")
			t.Setenv("LITESTREAM_AZURE_SAS_TOKEN", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			s := tc.s
			u, err := ParseReplicaURL(s.URL)
			if s.URL == "" {
				u, err = nil, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := absConfigFromSettings(&s, u)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secretkey") {
					t.Fatalf("error leaks a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want) // Config's String hides keys
			}
		})
	}
}

// The registered factory builds an abs client from a URL (no network).
func TestABSFactory(t *testing.T) {
	t.Setenv("LITESTREAM_AZURE_SAS_TOKEN", "sv=1&sig=x")
	c, err := NewReplicaClient(&ReplicaSettings{URL: "abs://acct@cont/db"})
	if err != nil {
		t.Fatal(err)
	}
	ac, ok := c.(*abs.ReplicaClient)
	if !ok {
		t.Fatalf("client is %T, want *abs.ReplicaClient", c)
	}
	if ac.Type() != "abs" || ac.Account() != "acct" || ac.Container() != "cont" || ac.Path() != "db" {
		t.Fatalf("client = %s %s/%s/%s", ac.Type(), ac.Account(), ac.Container(), ac.Path())
	}
	if _, err := NewReplicaClient(&ReplicaSettings{URL: "abs://cont/db"}); err == nil || !strings.Contains(err.Error(), "account-name required") {
		t.Fatalf("no account, no endpoint: err = %v", err)
	}
}
