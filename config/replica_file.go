package config

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

func init() { RegisterReplicaClientFactory(file.ReplicaClientType, newFileReplicaClient) }

// newFileReplicaClient builds a file replica from `path:` or file:///dir.
func newFileReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	p := s.Path
	if u != nil {
		if s.Path != "" {
			return nil, errors.New("cannot specify both url and path")
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file URL %q must be file:///absolute/path (got host %q)", u.String(), u.Host)
		}
		p = u.Path
	}
	if p == "" {
		return nil, errors.New("file replica requires a path")
	}
	p, err := expandHome(p)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("file replica path %q: %w", p, err)
	}
	return file.NewReplicaClient(abs), nil
}
