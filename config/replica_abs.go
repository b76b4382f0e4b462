package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/abs"
)

func init() { RegisterReplicaClientFactory(abs.ReplicaClientType, newABSReplicaClient) }

// Environment fallbacks for the Azure credentials, as upstream reads them.
const (
	envAzureAccountKey = "LITESTREAM_AZURE_ACCOUNT_KEY"
	envAzureSASToken   = "LITESTREAM_AZURE_SAS_TOKEN"
)

func newABSReplicaClient(s *ReplicaSettings, u *url.URL) (litestream.ReplicaClient, error) {
	cfg, err := absConfigFromSettings(s, u)
	if err != nil {
		return nil, err
	}
	return abs.NewReplicaClient(cfg)
}

// absConfigFromSettings maps `url: abs://[account@]container/path` or the
// `bucket:` (container) and `path:` keys, plus account-name, account-key,
// sas-token and endpoint, to an abs.Config. account-name overrides the
// URL's account; account-key and sas-token fall back to the environment.
func absConfigFromSettings(s *ReplicaSettings, u *url.URL) (abs.Config, error) {
	cfg := abs.Config{
		Container: s.Bucket,
		Path:      cleanKeyPrefix(s.Path),
		Endpoint:  s.Endpoint,
	}
	if u != nil {
		if s.Bucket != "" || s.Path != "" {
			return abs.Config{}, errors.New("cannot specify url together with bucket or path")
		}
		if u.Port() != "" {
			return abs.Config{}, fmt.Errorf("abs URL must be abs://[account@]container/path (got %q); set endpoint for a custom host", u.Redacted())
		}
		if _, hasPassword := u.User.Password(); hasPassword {
			return abs.Config{}, fmt.Errorf("abs URL %q must not contain a key: use account-key or %s", u.Redacted(), envAzureAccountKey)
		}
		cfg.Container, cfg.Path = u.Host, cleanKeyPrefix(u.Path)
		cfg.AccountName = u.User.Username()
	}
	if s.AccountName != "" {
		cfg.AccountName = s.AccountName
	}
	cfg.AccountKey = firstNonEmpty(s.AccountKey, os.Getenv(envAzureAccountKey))
	cfg.SASToken = firstNonEmpty(s.SASToken, os.Getenv(envAzureSASToken))
	if cfg.Container == "" {
		return abs.Config{}, errors.New("container required: set bucket or use abs://[account@]container/path")
	}
	return cfg, nil
}

func firstNonEmpty(a ...string) string {
	for _, s := range a {
		if s != "" {
			return s
		}
	}
	return ""
}
