package nats

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// authOption picks one authentication method, in upstream's order of
// precedence. nil means connect without credentials.
func authOption(cfg *Config) (nats.Option, error) {
	switch {
	case cfg.JWT != "" && cfg.Seed != "":
		return nats.UserJWTAndSeed(cfg.JWT, cfg.Seed), nil
	case cfg.Creds != "":
		if _, err := os.Stat(cfg.Creds); err != nil {
			return nil, fmt.Errorf("creds file: %w", err)
		}
		return nats.UserCredentials(cfg.Creds), nil
	case cfg.NKey != "":
		return nkeyOption(cfg.NKey)
	case cfg.Username != "":
		return nats.UserInfo(cfg.Username, cfg.Password), nil
	case cfg.Token != "":
		return nats.Token(cfg.Token), nil
	}
	return nil, nil
}

// nkeyOption signs the server's challenge with a user nkey. The value is
// the seed itself ("SU...") or the path of a file holding it. Upstream
// passes the value as a public key without a signer, which can never
// authenticate.
func nkeyOption(v string) (nats.Option, error) {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "SU") {
		opt, err := nats.NkeyOptionFromSeed(v)
		if err != nil {
			// The library's message may quote the file's content; keep
			// only the path.
			if _, serr := os.Stat(v); serr != nil {
				return nil, fmt.Errorf("nkey: %w", serr)
			}
			return nil, fmt.Errorf("nkey: %s holds no valid user seed", v)
		}
		return opt, nil
	}
	kp, err := nkeys.FromSeed([]byte(v))
	if err != nil {
		return nil, errors.New("nkey: not a valid user seed") // never echo a seed
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, errors.New("nkey: not a valid user seed")
	}
	return nats.Nkey(pub, kp.Sign), nil
}
