package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/nats"
)

func init() { RegisterReplicaClientFactory(nats.ReplicaClientType, newNATSReplicaClient) }

func newNATSReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := natsConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return nats.NewReplicaClient(cfg)
}

// natsConfigFromSettings maps `url: nats://[user:pass@]host[:port]/bucket[/prefix]`
// and the NATS keys to a nats.Config. The URL's first path element is the
// bucket and the rest an object-name prefix; `bucket:` and `path:` fill
// in what the URL leaves out (upstream lets `bucket:` stand in for a URL
// without one). Credential keys override the URL's user and password; a
// URL user without a password is a token, as in the NATS tools.
func natsConfigFromSettings(s *ReplicaSettings, u *url.URL) (nats.Config, error) {
	cfg := nats.Config{
		Bucket:     s.Bucket,
		Path:       cleanKeyPrefix(s.Path),
		JWT:        s.JWT,
		Seed:       s.Seed,
		Username:   s.Username,
		Password:   s.Password,
		Token:      s.Token,
		TLS:        s.TLS,
		ClientCert: s.ClientCert,
		ClientKey:  s.ClientKey,
	}
	if u != nil {
		if err := applyNATSURL(&cfg, s, u); err != nil {
			return nats.Config{}, err
		}
	}
	if err := applyNATSFiles(&cfg, s); err != nil {
		return nats.Config{}, err
	}
	cfg.MaxReconnects = s.MaxReconnects
	if s.ReconnectWait != nil {
		cfg.ReconnectWait = s.ReconnectWait.D()
	}
	if s.Timeout != nil {
		cfg.Timeout = s.Timeout.D()
	}
	switch {
	case cfg.Bucket == "":
		return nats.Config{}, errors.New("bucket required (nats://host/bucket or bucket:)")
	case (cfg.ClientCert == "") != (cfg.ClientKey == ""):
		return nats.Config{}, errors.New("client-cert and client-key must be set together")
	}
	return cfg, nil
}

// applyNATSURL takes the server, bucket, prefix and credentials from u.
func applyNATSURL(cfg *nats.Config, s *ReplicaSettings, u *url.URL) error {
	if u.Opaque != "" {
		return fmt.Errorf("nats URL must be nats://[user:pass@]host[:port]/bucket[/path] (got %s)", u.Redacted())
	}
	if u.Host != "" {
		cfg.URL = (&url.URL{Scheme: "nats", Host: u.Host}).String()
	}
	bucket, prefix, _ := strings.Cut(strings.Trim(u.Path, "/"), "/")
	if bucket != "" {
		if s.Bucket != "" && s.Bucket != bucket {
			return fmt.Errorf("bucket %q in url conflicts with bucket: %q", bucket, s.Bucket)
		}
		cfg.Bucket = bucket
	}
	if prefix = cleanKeyPrefix(prefix); prefix != "" {
		if s.Path != "" {
			return errors.New("cannot specify a path both in url and in path")
		}
		cfg.Path = prefix
	}
	if u.User == nil || cfg.Username != "" || cfg.Token != "" {
		return nil
	}
	if pw, ok := u.User.Password(); ok {
		cfg.Username = u.User.Username()
		if cfg.Password == "" {
			cfg.Password = pw
		}
	} else {
		cfg.Token = u.User.Username()
	}
	return nil
}

// applyNATSFiles expands ~ in every key that names a file.
func applyNATSFiles(cfg *nats.Config, s *ReplicaSettings) error {
	var err error
	for _, f := range []struct {
		key      string
		dst, src *string
	}{
		{"creds", &cfg.Creds, &s.Creds},
		{"nkey", &cfg.NKey, &s.NKey}, // a seed ("SU...") is left alone by expandHome
		{"client-cert", &cfg.ClientCert, &s.ClientCert},
		{"client-key", &cfg.ClientKey, &s.ClientKey},
	} {
		if *f.dst, err = expandHome(*f.src); err != nil {
			return fmt.Errorf("%s: %w", f.key, err)
		}
	}
	for _, p := range s.RootCAs {
		p, err := expandHome(p)
		if err != nil {
			return fmt.Errorf("root-cas: %w", err)
		}
		cfg.RootCAs = append(cfg.RootCAs, p)
	}
	return nil
}
