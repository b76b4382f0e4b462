package main

import (
	"errors"
	"fmt"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// Helpers shared by the commands that inspect databases and replicas
// (ltx, databases, status, reset) rather than run them.

// loadDatabases reads the config and returns one config per database,
// with `dir:` entries expanded to the databases that exist now.
func loadDatabases(configPath string, noExpandEnv bool) ([]*config.DBConfig, error) {
	cfg, err := loadConfig(configPath, noExpandEnv)
	if err != nil {
		return nil, err
	}
	return expandDBConfigs(cfg, expandList)
}

// replicaClientFor returns the replica client of a replica URL, or of a
// database path looked up in the config (`path:` or `dir:` entries).
func replicaClientFor(arg, configPath string, noExpandEnv bool) (litestream.ReplicaClient, error) {
	if config.IsURL(arg) {
		if configPath != "" {
			return nil, errors.New("cannot specify a replica URL and -config together")
		}
		return config.NewReplicaClient(&config.ReplicaSettings{URL: arg})
	}
	cfg, err := loadConfig(configPath, noExpandEnv)
	if err != nil {
		return nil, err
	}
	dbPath, err := config.CleanDBPath(arg)
	if err != nil {
		return nil, err
	}
	dbc, err := findDBConfig(cfg, dbPath)
	if err != nil {
		return nil, err
	}
	return replicaClientOf(dbc)
}

func replicaClientOf(dbc *config.DBConfig) (litestream.ReplicaClient, error) {
	rs, err := dbc.ReplicaSettings()
	if err != nil {
		return nil, err
	}
	return config.NewReplicaClient(rs)
}

// replicaType names a database's backend from its settings alone, without
// building a client: the URL scheme, else `type:`, else file.
func replicaType(dbc *config.DBConfig) string {
	rs, err := dbc.ReplicaSettings()
	if err != nil {
		return "-"
	}
	typ := rs.Type
	if rs.URL != "" {
		if u, err := config.ParseReplicaURL(rs.URL); err == nil {
			typ = u.Scheme
		}
	}
	switch typ {
	case "":
		return "file"
	case "webdavs":
		return "webdav"
	}
	return typ
}

// humanBytes formats a size with SI units as upstream does: "0 B",
// "512 B", "4.1 kB", "33 kB", "1.5 MB".
func humanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v, units := float64(n), []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	i := -1
	for v >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// needOneArg checks a command got exactly one positional argument and no
// flag after it.
func needOneArg(args []string, what, example string) error {
	if err := checkNoTrailingFlags(args); err != nil {
		return err
	}
	if len(args) != 1 {
		return fmt.Errorf("%s required\nTry: %s", what, example)
	}
	return nil
}
