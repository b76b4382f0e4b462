package sftp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeyCheck is how a connection verifies the server: the callback plus
// the host key algorithms to ask for. Asking only for algorithms of the
// keys we know matters: a server with several host keys would otherwise
// present whichever one Go prefers, and a known_hosts file holding only
// another type would reject a perfectly good server.
type hostKeyCheck struct {
	callback   ssh.HostKeyCallback
	algorithms []string // nil lets the ssh package choose
}

// newHostKeyCheck picks the verification from the config, most explicit
// first: a pinned key, a known_hosts file, the user's ~/.ssh/known_hosts.
// Verification is skipped only on an explicit insecure-ignore-host-key.
func newHostKeyCheck(cfg *Config, addr string) (*hostKeyCheck, error) {
	switch {
	case cfg.HostKey != "":
		return pinnedHostKey(cfg.HostKey)
	case cfg.HostKeyPath != "":
		return knownHostsCheck(cfg.HostKeyPath, addr, "host-key-path")
	case cfg.InsecureIgnoreHostKey:
		return &hostKeyCheck{callback: ssh.InsecureIgnoreHostKey()}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("no host-key or host-key-path set and no home directory for ~/.ssh/known_hosts: %w", err)
	}
	p := filepath.Join(home, ".ssh", "known_hosts")
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cannot verify the host key of %s: no host-key or host-key-path set and %s does not exist "+
			"(add the server with ssh-keyscan, set host-key, or set insecure-ignore-host-key: true to skip verification)", addr, p)
	}
	return knownHostsCheck(p, addr, "known_hosts file")
}

// pinnedHostKey accepts exactly one key, given in authorized_keys format
// ("ssh-ed25519 AAAA... comment").
func pinnedHostKey(s string) (*hostKeyCheck, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("parse host-key (expected authorized_keys format, e.g. \"ssh-ed25519 AAAA...\"): %w", err)
	}
	want := key.Marshal()
	cb := func(hostname string, _ net.Addr, got ssh.PublicKey) error {
		if string(got.Marshal()) != string(want) {
			return fmt.Errorf("host key mismatch for %s: server presented %s %s, host-key pins %s %s",
				hostname, got.Type(), ssh.FingerprintSHA256(got), key.Type(), ssh.FingerprintSHA256(key))
		}
		return nil
	}
	return &hostKeyCheck{callback: cb, algorithms: algorithmsFor(key.Type())}, nil
}

// knownHostsCheck verifies against a known_hosts file. what names the
// source in error messages.
func knownHostsCheck(path, addr, what string) (*hostKeyCheck, error) {
	db, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, path, err)
	}
	cb := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("host key of %s (%s %s) is unknown: it is not in %s %s "+
					"(add it with ssh-keyscan, pin it with host-key, or set insecure-ignore-host-key: true to skip verification)",
					hostname, key.Type(), ssh.FingerprintSHA256(key), what, path)
			}
			return fmt.Errorf("host key of %s CHANGED: server presented %s %s, but %s %s line %d has %s %s "+
				"(possible man-in-the-middle attack; if the server was re-keyed, update the file)",
				hostname, key.Type(), ssh.FingerprintSHA256(key), what, path, ke.Want[0].Line,
				ke.Want[0].Key.Type(), ssh.FingerprintSHA256(ke.Want[0].Key))
		}
		var re *knownhosts.RevokedError
		if errors.As(err, &re) {
			return fmt.Errorf("host key of %s is marked @revoked in %s %s", hostname, what, path)
		}
		return err
	}
	return &hostKeyCheck{callback: cb, algorithms: knownAlgorithms(db, addr)}, nil
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for addr. The knownhosts package has no lookup call, but checking
// a key that cannot match returns every key on file for the host.
func knownAlgorithms(db ssh.HostKeyCallback, addr string) []string {
	err := db(addr, &net.TCPAddr{}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil // unknown host: the callback will refuse it with a clear message
	}
	var algos []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

// algorithmsFor maps a key type to the signature algorithms a server may
// use with it: an RSA key signs with SHA-2 in current servers.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// probeKey is a public key that matches nothing.
type probeKey struct{}

func (probeKey) Type() string                        { return "litestream-probe" }
func (probeKey) Marshal() []byte                     { return []byte("litestream-probe-key") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }
