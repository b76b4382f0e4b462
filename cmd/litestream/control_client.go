package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sqlitebackup/litestream/server"
)

// This file holds what the daemon-control commands (info, list, sync,
// register, unregister, start, stop) share: the -socket, -timeout and
// -json flags, the client and JSON output. The endpoints themselves are
// in the server package.

// controlFlags are the flags of every daemon-control command.
type controlFlags struct {
	socket  *string
	timeout *int
	json    *bool
}

// registerControlFlags adds -socket, -timeout (seconds) and -json.
func registerControlFlags(fs *flag.FlagSet, defaultTimeout int) *controlFlags {
	return &controlFlags{
		socket:  fs.String("socket", server.DefaultSocketPath, "control socket of the running daemon"),
		timeout: fs.Int("timeout", defaultTimeout, "seconds to wait for the daemon"),
		json:    fs.Bool("json", false, "print JSON"),
	}
}

// client returns a client for the socket, checking -timeout.
func (f *controlFlags) client() (*server.Client, error) {
	if *f.timeout <= 0 {
		return nil, errors.New("timeout must be greater than 0")
	}
	return &server.Client{SocketPath: *f.socket, Timeout: time.Duration(*f.timeout) * time.Second}, nil
}

// controlDBPath returns the one DB_PATH argument, made absolute here:
// the daemon's working directory is not ours.
func controlDBPath(args []string, cmd string) (string, error) {
	if err := checkNoTrailingFlags(args); err != nil {
		return "", err
	}
	if len(args) != 1 {
		return "", fmt.Errorf("database path required\nTry: litestream %s DB_PATH", cmd)
	}
	return server.CleanPath(args[0])
}

// commandFailed wraps a daemon's refusal the way upstream words it.
func commandFailed(cmd string, err error) error {
	var ae *server.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s failed: %w", cmd, err)
	}
	return err
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
