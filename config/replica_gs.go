package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/gs"
)

func init() { RegisterReplicaClientFactory(gs.ReplicaClientType, newGSReplicaClient) }

func newGSReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := gsConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return gs.NewReplicaClient(cfg)
}

// gsConfigFromSettings maps `url: gs://bucket/path` or the `bucket:` and
// `path:` keys to a gs.Config. Credentials are never configured here:
// the client uses Application Default Credentials, as upstream does.
func gsConfigFromSettings(s *ReplicaSettings, u *url.URL) (gs.Config, error) {
	cfg := gs.Config{Bucket: s.Bucket, Path: cleanKeyPrefix(s.Path)}
	if u != nil {
		if s.Bucket != "" || s.Path != "" {
			return gs.Config{}, errors.New("cannot specify url together with bucket or path")
		}
		if u.User != nil || u.Port() != "" {
			return gs.Config{}, fmt.Errorf("gs URL must be gs://bucket/path (got %q)", u.Redacted())
		}
		cfg.Bucket, cfg.Path = u.Host, cleanKeyPrefix(u.Path)
	}
	if cfg.Bucket == "" {
		return gs.Config{}, errors.New("bucket required")
	}
	return cfg, nil
}

// cleanKeyPrefix turns a user's path into an object key prefix without
// leading, trailing or doubled slashes and without "." elements.
func cleanKeyPrefix(p string) string {
	if p == "" {
		return ""
	}
	return strings.Trim(path.Clean("/"+p), "/")
}
