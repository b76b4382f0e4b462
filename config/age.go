package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/agecrypt"
)

// wrapAge wraps c with client-side age encryption when the replica has an
// `age:` section. Identities are AGE-SECRET-KEY-1... strings or paths of
// identity files; recipients are age1... strings or paths of recipient
// files. With identities only, their recipients are used for writing.
func wrapAge(c litestream.ReplicaClient, s *AgeSettings) (litestream.ReplicaClient, error) {
	if s == nil {
		return c, nil
	}
	var identities []age.Identity
	for _, v := range s.Identities {
		ids, err := parseAgeList(v, age.ParseIdentities)
		if err != nil {
			return nil, fmt.Errorf("age.identities: %w", err)
		}
		identities = append(identities, ids...)
	}
	var recipients []age.Recipient
	for _, v := range s.Recipients {
		rs, err := parseAgeList(v, age.ParseRecipients)
		if err != nil {
			return nil, fmt.Errorf("age.recipients: %w", err)
		}
		recipients = append(recipients, rs...)
	}
	if len(recipients) == 0 {
		for _, id := range identities {
			if x, ok := id.(*age.X25519Identity); ok {
				recipients = append(recipients, x.Recipient())
			}
		}
	}
	if len(identities) == 0 && len(recipients) == 0 {
		return nil, errors.New("age: at least one identity or recipient is required")
	}
	return agecrypt.NewClient(c, recipients, identities), nil
}

// parseAgeList parses an inline key or, failing that, a file of keys. Key
// material never appears in the error.
func parseAgeList[T any](v string, parse func(r io.Reader) ([]T, error)) ([]T, error) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "AGE-SECRET-KEY-") || strings.HasPrefix(v, "age1") {
		a, err := parse(strings.NewReader(v))
		if err != nil {
			return nil, errors.New("invalid key (value not shown)")
		}
		return a, nil
	}
	path, err := expandHome(v)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	a, err := parse(strings.NewReader(string(b)))
	if err != nil {
		return nil, fmt.Errorf("key file %s: invalid contents", path)
	}
	return a, nil
}
