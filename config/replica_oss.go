package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/oss"
)

func init() { RegisterReplicaClientFactory(oss.ReplicaClientType, newOSSReplicaClient) }

func newOSSReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := ossConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return oss.NewReplicaClient(cfg)
}

// ossConfigFromSettings maps `url: oss://bucket[.oss-REGION.aliyuncs.com]/path`
// or the bucket/path keys, then the discrete keys, to an oss.Config.
// Unlike Litestream, which ignores it, `?endpoint=` in the URL is honoured.
func ossConfigFromSettings(s *ReplicaSettings, u *url.URL) (oss.Config, error) {
	cfg := oss.Config{Bucket: s.Bucket, Path: cleanKeyPrefix(s.Path)}
	if u != nil {
		if s.Bucket != "" || s.Path != "" {
			return oss.Config{}, errors.New("cannot specify url together with bucket or path")
		}
		if u.User != nil {
			return oss.Config{}, fmt.Errorf("oss URL must not carry credentials (got %q): use access-key-id and secret-access-key", u.Redacted())
		}
		var err error
		if cfg.Bucket, cfg.Region, cfg.Endpoint, err = oss.ParseHost(u.Host); err != nil {
			return oss.Config{}, err
		}
		cfg.Path = cleanKeyPrefix(u.Path)
		if err := applyOSSQuery(&cfg, u.Query()); err != nil {
			return oss.Config{}, err
		}
	}
	if err := applyOSSKeys(&cfg, s); err != nil {
		return oss.Config{}, err
	}
	if cfg.Bucket == "" {
		return oss.Config{}, errors.New("bucket required")
	}
	return cfg, nil
}

func applyOSSQuery(cfg *oss.Config, q url.Values) error {
	if v := q.Get("endpoint"); v != "" {
		cfg.Endpoint = v
	}
	if v := q.Get("region"); v != "" {
		cfg.Region = v
	}
	for _, name := range []string{"forcePathStyle", "force-path-style"} {
		if q.Has(name) {
			b, err := strconv.ParseBool(q.Get(name))
			if err != nil {
				return fmt.Errorf("oss URL query %s: expected true or false, got %q", name, q.Get(name))
			}
			cfg.ForcePathStyle = &b
		}
	}
	return nil
}

// applyOSSKeys lets the discrete YAML keys override URL-derived values.
func applyOSSKeys(cfg *oss.Config, s *ReplicaSettings) error {
	if s.Region != "" {
		cfg.Region = s.Region
	}
	if s.Endpoint != "" {
		cfg.Endpoint = s.Endpoint
	}
	if s.ForcePathStyle != nil {
		cfg.ForcePathStyle = s.ForcePathStyle
	}
	cfg.AccessKeyID, cfg.SecretAccessKey = s.AccessKeyID, s.SecretAccessKey
	cfg.SkipVerify = s.SkipVerify
	return applyUploadKeys(s, &cfg.PartSize, &cfg.Concurrency)
}
