package sftp

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"golang.org/x/crypto/ssh"
)

// authMethods builds the login methods from the config: the private key
// first (servers usually prefer it), then the password, offered both as
// "password" and as "keyboard-interactive" since many servers accept
// passwords only through the latter.
func authMethods(cfg *Config) ([]ssh.AuthMethod, error) {
	var methods []ssh.AuthMethod
	if cfg.KeyPath != "" {
		signer, err := loadSigner(cfg.KeyPath, cfg.KeyPassphrase)
		if err != nil {
			return nil, err
		}
		methods = append(methods, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		methods = append(methods,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if len(methods) == 0 {
		return nil, errors.New("no credentials: set key-path or password")
	}
	return methods, nil
}

// loadSigner reads a private key file, decrypting it with passphrase when
// it is protected. Errors name the file, never the passphrase.
func loadSigner(path, passphrase string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key-path: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case err == nil:
		return signer, nil
	case !errors.As(err, &missing):
		return nil, fmt.Errorf("parse private key %s: %w", path, err)
	case passphrase == "":
		return nil, fmt.Errorf("private key %s is encrypted: set key-passphrase", path)
	}
	signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(passphrase))
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, fmt.Errorf("decrypt private key %s: wrong key-passphrase", path)
	} else if err != nil {
		return nil, fmt.Errorf("decrypt private key %s: %w", path, err)
	}
	return signer, nil
}
