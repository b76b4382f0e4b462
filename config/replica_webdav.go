package config

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/webdav"
)

// webdavsScheme is the URL scheme (and type alias) for WebDAV over HTTPS.
const webdavsScheme = "webdavs"

func init() {
	RegisterReplicaClientFactory(webdav.ReplicaClientType, newWebDAVReplicaClient)
	RegisterReplicaClientFactory(webdavsScheme, newWebDAVReplicaClient)
}

func newWebDAVReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := webdavConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return webdav.NewReplicaClient(cfg)
}

// webdavConfigFromSettings maps `url: webdav[s]://[user:pass@]host[:port]/path`
// (webdav is plain HTTP, webdavs HTTPS) or the webdav-url,
// webdav-username, webdav-password and path keys to a webdav.Config. The
// server and path come from the URL or the keys, never both; the
// credential keys override the URL's.
func webdavConfigFromSettings(s *ReplicaSettings, u *url.URL) (webdav.Config, error) {
	cfg := webdav.Config{
		URL:      s.WebDAVURL,
		Username: s.WebDAVUsername,
		Password: s.WebDAVPassword,
		Path:     s.Path,
	}
	if u != nil {
		if s.WebDAVURL != "" || s.Path != "" {
			return webdav.Config{}, errors.New("cannot specify url together with webdav-url or path")
		}
		if u.Opaque != "" || u.Host == "" {
			return webdav.Config{}, fmt.Errorf("webdav URL must be webdav[s]://[user:pass@]host[:port]/path (got %s)", u.Redacted())
		}
		scheme := "http"
		if u.Scheme == webdavsScheme {
			scheme = "https"
		}
		cfg.URL = (&url.URL{Scheme: scheme, Host: u.Host}).String()
		cfg.Path = u.Path
		if u.User != nil {
			if cfg.Username == "" {
				cfg.Username = u.User.Username()
			}
			if pw, ok := u.User.Password(); ok && cfg.Password == "" {
				cfg.Password = pw
			}
		}
	}
	if cfg.URL == "" {
		return webdav.Config{}, errors.New("webdav-url required")
	}
	return cfg, nil
}
