package config

import (
	"errors"
	"fmt"
	"net/url"
	"path"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/sftp"
)

func init() { RegisterReplicaClientFactory(sftp.ReplicaClientType, newSFTPReplicaClient) }

func newSFTPReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := sftpConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return sftp.NewReplicaClient(cfg)
}

// sftpConfigFromSettings maps `url: sftp://user[:pass]@host[:port]/path`
// or the host/user/password/path keys to an sftp.Config. Host and path
// come from the URL or the keys, never both; user and password keys
// override the URL's. As upstream, the URL path is used as is, so
// sftp://host/backups/db is the absolute /backups/db; use `path:` for a
// path relative to the login directory.
func sftpConfigFromSettings(s *ReplicaSettings, u *url.URL) (sftp.Config, error) {
	cfg := sftp.Config{
		Host:                  s.Host,
		User:                  s.User,
		Password:              s.Password,
		Path:                  s.Path,
		KeyPassphrase:         s.KeyPassphrase,
		HostKey:               s.HostKey,
		InsecureIgnoreHostKey: s.InsecureHostKey,
		ConcurrentWrites:      s.ConcurrentWrites == nil || *s.ConcurrentWrites, // on by default, as upstream
	}
	if u != nil {
		if s.Host != "" || s.Path != "" {
			return sftp.Config{}, errors.New("cannot specify url together with host or path")
		}
		if u.Opaque != "" || u.Host == "" {
			return sftp.Config{}, fmt.Errorf("sftp URL must be sftp://user@host[:port]/path (got %s)", u.Redacted())
		}
		cfg.Host, cfg.Path = u.Host, u.Path
		if u.User != nil {
			if cfg.User == "" {
				cfg.User = u.User.Username()
			}
			if pw, ok := u.User.Password(); ok && cfg.Password == "" {
				cfg.Password = pw
			}
		}
	}
	if cfg.Path != "" {
		cfg.Path = path.Clean(cfg.Path)
	}
	var err error
	if cfg.KeyPath, err = expandHome(s.KeyPath); err != nil {
		return sftp.Config{}, fmt.Errorf("key-path: %w", err)
	}
	if cfg.HostKeyPath, err = expandHome(s.HostKeyPath); err != nil {
		return sftp.Config{}, fmt.Errorf("host-key-path: %w", err)
	}
	switch {
	case cfg.Host == "":
		return sftp.Config{}, errors.New("host required")
	case cfg.User == "":
		return sftp.Config{}, errors.New("user required")
	case cfg.KeyPath == "" && cfg.Password == "":
		return sftp.Config{}, errors.New("key-path or password required")
	}
	return cfg, nil
}
