package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream/oss"
)

func TestOSSConfigFromSettings(t *testing.T) {
	yes := true
	size := Size(8 << 20)
	conc := 3
	for _, tc := range []struct {
		name string
		s    ReplicaSettings
		want oss.Config
	}{
		{"bucket only", ReplicaSettings{URL: "oss://mybucket/backups/app"},
			oss.Config{Bucket: "mybucket", Path: "backups/app"}},
		{"regional host", ReplicaSettings{URL: "oss://mybucket.oss-cn-shanghai.aliyuncs.com/db"},
			oss.Config{Bucket: "mybucket", Path: "db", Region: "cn-shanghai", Endpoint: "https://s3.oss-cn-shanghai.aliyuncs.com"}},
		{"internal host", ReplicaSettings{URL: "oss://b.oss-cn-beijing-internal.aliyuncs.com/db"},
			oss.Config{Bucket: "b", Path: "db", Region: "cn-beijing", Endpoint: "https://s3.oss-cn-beijing-internal.aliyuncs.com"}},
		{"endpoint in the query is honoured", ReplicaSettings{URL: "oss://b/p?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true"},
			oss.Config{Bucket: "b", Path: "p", Region: "us-east-1", Endpoint: "http://127.0.0.1:9000", ForcePathStyle: &yes}},
		{"discrete keys", ReplicaSettings{Type: "oss", Bucket: "b", Path: "/a/b/", Region: "cn-hangzhou",
			Endpoint: "oss-cn-hangzhou.aliyuncs.com", AccessKeyID: "id", SecretAccessKey: "secret", PartSize: &size, Concurrency: &conc},
			oss.Config{Bucket: "b", Path: "a/b", Region: "cn-hangzhou", Endpoint: "oss-cn-hangzhou.aliyuncs.com",
				AccessKeyID: "id", SecretAccessKey: "secret", PartSize: 8 << 20, Concurrency: 3}},
		{"keys override the URL", ReplicaSettings{URL: "oss://b.oss-cn-shanghai.aliyuncs.com/p", Region: "cn-shenzhen", Endpoint: "oss-cn-shenzhen.aliyuncs.com"},
			oss.Config{Bucket: "b", Path: "p", Region: "cn-shenzhen", Endpoint: "oss-cn-shenzhen.aliyuncs.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ossConfigFromSettings(&tc.s, parseURLForTest(t, tc.s.URL))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestOSSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		s    ReplicaSettings
		want string
	}{
		{ReplicaSettings{Type: "oss"}, "bucket required"},
		{ReplicaSettings{URL: "oss://b/p", Bucket: "b"}, "cannot specify url together with bucket"},
		{ReplicaSettings{URL: "oss://b.example.com/p"}, `oss URL host "b.example.com"`},
		{ReplicaSettings{URL: "oss://b/p?forcePathStyle=maybe"}, "forcePathStyle"},
		{ReplicaSettings{URL: "oss://id:secret@b/p"}, "must not carry credentials"},
		{ReplicaSettings{Type: "oss", Bucket: "b", Concurrency: new(int)}, "concurrency must be positive"},
	} {
		_, err := NewReplicaClient(&tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.s, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") && !strings.Contains(tc.want, "credentials") {
			t.Errorf("error leaks a credential: %v", err)
		}
	}
}
