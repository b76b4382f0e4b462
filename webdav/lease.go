package webdav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/studio-b12/gowebdav"

	"github.com/sqlitebackup/litestream"
)

// The single-writer lease of a WebDAV replica is the file <path>/lock.json.
// WebDAV servers do not check conditional PUTs atomically (Apache's
// mod_dav tests If-None-Match / If-Match, then writes), so every change to
// the lease runs under an exclusive WebDAV write lock (RFC 4918 LOCK) on
// lock.json itself, which the server grants to one client at a time:
//
//	LOCK lock.json (exclusive, depth 0, Timeout: Second-5)
//	GET lock.json → decide (free, expired, ours, or held by someone else)
//	PUT lock.json with If: (<lock token>)   (refused without the token)
//	UNLOCK lock.json
//
// The lock is a short mutex, not the lease: it is held for a few requests
// and the server drops it by itself after its timeout if its holder dies.
// The lease's expiry is in the file, to the nanosecond, and its token is
// a hash of the file's content, so any rewrite changes it. A release
// writes a lease with no owner that has already expired.
//
// A server without WebDAV locks (LOCK answered 405 or 501, e.g. nginx's
// dav module) still gets the lease, changed without the mutex: a second
// process starting while the first holds the lease waits as usual, but
// two processes acquiring a free lease within the same few milliseconds
// could both believe they hold it.

var _ litestream.Leaser = (*ReplicaClient)(nil)

// errLockLost: the server refused our lock token (HTTP 412), e.g. because
// the lock timed out while we were slow; the change is decided again.
var errLockLost = errors.New("the server no longer honours our WebDAV lock (HTTP 412 Precondition Failed)")

const (
	// leaseMutexTimeout is the server-side timeout of the LOCK taken
	// around each change: a holder that dies keeps others out this long.
	leaseMutexTimeout = 5 * time.Second
	// leaseMutexWait is how long a change waits for the LOCK, longer than
	// leaseMutexTimeout so that a dead holder's lock is outlived.
	leaseMutexWait = leaseMutexTimeout + 2*time.Second

	leaseMutexPoll = 10 * time.Millisecond
	leaseMaxSize   = 64 << 10
)

func (c *ReplicaClient) leasePath() string { return path.Join(c.root, litestream.LeaseObjectName) }

func (c *ReplicaClient) leaseObject() string {
	return fmt.Sprintf("webdav %s%s", strings.TrimSuffix(c.redacted, "/"), c.leasePath())
}

// AcquireLease creates the lease, takes over an expired one, or renews
// one owner already holds.
func (c *ReplicaClient) AcquireLease(ctx context.Context, owner string, ttl time.Duration) (*litestream.Lease, error) {
	var lease *litestream.Lease
	err := c.withLeaseMutex(ctx, owner, true, func(token string) error {
		cur, err := c.readLease(ctx, ttl)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		case cur.Owner != owner && !cur.Expired(time.Now()):
			return cur.HeldBy(c.leaseObject())
		}
		lease, err = c.writeLease(ctx, token, litestream.MarshalLease(owner, time.Now().Add(ttl)))
		return err
	})
	return lease, err
}

// RenewLease rewrites the lease with a new expiry if it is still exactly
// the one we hold.
func (c *ReplicaClient) RenewLease(ctx context.Context, lease *litestream.Lease, ttl time.Duration) (*litestream.Lease, error) {
	var next *litestream.Lease
	err := c.withLeaseMutex(ctx, lease.Owner, false, func(token string) error {
		if err := c.checkLeaseHeld(ctx, lease, ttl); err != nil {
			return err
		}
		var err error
		next, err = c.writeLease(ctx, token, litestream.MarshalLease(lease.Owner, time.Now().Add(ttl)))
		return err
	})
	return next, err
}

// ReleaseLease replaces our lease with an expired one if it is still the
// one we hold.
func (c *ReplicaClient) ReleaseLease(ctx context.Context, lease *litestream.Lease) error {
	err := c.withLeaseMutex(ctx, lease.Owner, false, func(token string) error {
		if err := c.checkLeaseHeld(ctx, lease, 0); err != nil {
			return err
		}
		_, err := c.writeLease(ctx, token, litestream.ReleasedLease())
		return err
	})
	if errors.Is(err, litestream.ErrLeaseHeld) {
		return nil // no longer ours: nothing to release
	}
	return err
}

// checkLeaseHeld fails with a *LeaseHeldError unless the stored lease is
// lease.
func (c *ReplicaClient) checkLeaseHeld(ctx context.Context, lease *litestream.Lease, ttl time.Duration) error {
	cur, err := c.readLease(ctx, ttl)
	if errors.Is(err, fs.ErrNotExist) {
		return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: "nobody (the lease file was removed)"}
	} else if err != nil {
		return err
	}
	if cur.Token != lease.Token {
		return cur.HeldBy(c.leaseObject())
	}
	return nil
}

func leaseToken(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// withLeaseMutex runs fn while holding an exclusive WebDAV lock on the
// lease file. If the replica's collection does not exist yet, create
// makes it (acquiring); otherwise there is no lease to change.
func (c *ReplicaClient) withLeaseMutex(ctx context.Context, owner string, create bool, fn func(token string) error) error {
	p := c.leasePath()
	deadline := time.Now().Add(leaseMutexWait)
	for created := false; ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		token, status, err := c.lock(ctx, p, owner)
		switch {
		case err != nil:
			return err
		case token != "":
			err := fn(token)
			c.unlock(ctx, p, token)
			if errors.Is(err, errLockLost) && time.Now().Before(deadline) {
				continue // the server dropped our lock: decide again under a new one
			}
			return err
		case status == http.StatusConflict && create && !created:
			if err := c.mkdirAll(ctx, c.root); err != nil {
				return c.leaseError("create collection", c.root, err)
			}
			created = true
			continue
		case status == http.StatusConflict:
			return &litestream.LeaseHeldError{Object: c.leaseObject(), Owner: "nobody (the replica's collection is missing)"}
		case status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented:
			// No WebDAV locks on this server (class 1 only, like nginx's
			// dav module): change the lease without the mutex.
			if create {
				if err := c.mkdirAll(ctx, c.root); err != nil {
					return c.leaseError("create collection", c.root, err)
				}
			}
			return fn("")
		case status != http.StatusLocked:
			return c.leaseError("LOCK", p, fmt.Errorf("server answered HTTP %d %s", status, http.StatusText(status)))
		case time.Now().After(deadline):
			return c.leaseError("LOCK", p, fmt.Errorf("still locked by another client after %s (a WebDAV lock on the lease file that is not litestream's?)", leaseMutexWait))
		}
		select { // 423 Locked: another client is changing the lease
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(leaseMutexPoll + rand.N(leaseMutexPoll)):
		}
	}
}

// lock asks for an exclusive write lock on p. It returns the lock token,
// or no token and the status the server refused with.
func (c *ReplicaClient) lock(ctx context.Context, p, owner string) (token string, status int, err error) {
	var ownerXML strings.Builder
	_ = xml.EscapeText(&ownerXML, []byte("litestream lease change by "+owner))
	body := `<?xml version="1.0" encoding="utf-8"?>` +
		`<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>` +
		`<D:owner>` + ownerXML.String() + `</D:owner></D:lockinfo>`
	rs, err := c.leaseRequest(ctx, "LOCK", p, []byte(body), http.Header{
		"Content-Type": {`application/xml; charset="utf-8"`},
		"Depth":        {"0"},
		"Timeout":      {fmt.Sprintf("Second-%d", int(leaseMutexTimeout/time.Second))},
	})
	if err != nil {
		return "", 0, err
	}
	defer drain(rs)
	if rs.StatusCode != http.StatusOK && rs.StatusCode != http.StatusCreated {
		return "", rs.StatusCode, nil
	}
	token = strings.Trim(strings.TrimSpace(rs.Header.Get("Lock-Token")), "<>")
	if token == "" {
		return "", 0, c.leaseError("LOCK", p, errors.New("server granted a lock without a Lock-Token: WebDAV class 2 (locking) unsupported"))
	}
	return token, rs.StatusCode, nil
}

// unlock releases the lock, even when ctx has ended; if that fails the
// server drops the lock after leaseMutexTimeout.
func (c *ReplicaClient) unlock(ctx context.Context, p, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
	defer cancel()
	if rs, err := c.leaseRequest(ctx, "UNLOCK", p, nil, http.Header{"Lock-Token": {"<" + token + ">"}}); err == nil {
		drain(rs)
	}
}

// readLease reads the lease file. A missing or empty file is no lease; one
// that does not parse (damaged or edited by hand) counts as held by an
// unknown process until its modification time plus ttl.
func (c *ReplicaClient) readLease(ctx context.Context, ttl time.Duration) (*litestream.Lease, error) {
	p := c.leasePath()
	rs, err := c.leaseRequest(ctx, http.MethodGet, p, nil, nil)
	if err != nil {
		return nil, err
	}
	defer drain(rs)
	switch rs.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fs.ErrNotExist
	default:
		return nil, c.leaseError("read", p, fmt.Errorf("server answered HTTP %d %s", rs.StatusCode, http.StatusText(rs.StatusCode)))
	}
	b, err := io.ReadAll(io.LimitReader(rs.Body, leaseMaxSize))
	if err != nil {
		return nil, c.leaseError("read", p, err)
	} else if len(b) == 0 {
		return nil, fs.ErrNotExist // created empty by a LOCK (lock-null resource)
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		mtime, _ := http.ParseTime(rs.Header.Get("Last-Modified"))
		lease = &litestream.Lease{Owner: "an unknown process (lease file unreadable: " + err.Error() + ")", Expires: mtime.Add(ttl)}
	}
	lease.Token = leaseToken(b)
	return lease, nil
}

// writeLease stores b as the lease, under our lock token (none without
// WebDAV locks).
func (c *ReplicaClient) writeLease(ctx context.Context, token string, b []byte) (*litestream.Lease, error) {
	p := c.leasePath()
	hdr := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		hdr.Set("If", "(<"+token+">)")
	}
	rs, err := c.leaseRequest(ctx, http.MethodPut, p, b, hdr)
	if err != nil {
		return nil, err
	}
	defer drain(rs)
	if rs.StatusCode == http.StatusPreconditionFailed && token != "" {
		return nil, c.leaseError("write", p, errLockLost)
	}
	if rs.StatusCode/100 != 2 {
		return nil, c.leaseError("write", p, fmt.Errorf("server answered HTTP %d %s", rs.StatusCode, http.StatusText(rs.StatusCode)))
	}
	lease, err := litestream.UnmarshalLease(b)
	if err != nil {
		return nil, err
	}
	lease.Token = leaseToken(b)
	return lease, nil
}

// leaseRequest sends one request with the client's authentication
// (negotiated like gowebdav's own requests, whose API has no LOCK).
func (c *ReplicaClient) leaseRequest(ctx context.Context, method, p string, body []byte, hdr http.Header) (*http.Response, error) {
	hc := &http.Client{Transport: c.transport}
	auth, _ := c.auth.NewAuthenticator(nil)
	defer auth.Close()
	u := gowebdav.PathEscape(gowebdav.Join(gowebdav.FixSlash(c.cfg.URL), p))
	for attempt := 0; ; attempt++ {
		rq, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, c.leaseError(method, p, err)
		}
		for k, v := range hdr {
			rq.Header[k] = v
		}
		if err := auth.Authorize(hc, rq, p); err != nil {
			return nil, c.leaseError(method, p, err)
		}
		// Authorize replaces GetBody; the transport may need it to resend.
		rq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		rs, err := hc.Do(rq)
		if err != nil {
			return nil, c.leaseError(method, p, err)
		}
		redo, err := auth.Verify(hc, rs, p)
		if err != nil || rs.StatusCode == http.StatusUnauthorized && (!redo || attempt >= 2) {
			drain(rs)
			if err == nil {
				err = errors.New("access denied (HTTP 401): check webdav-username and webdav-password")
			}
			return nil, c.leaseError(method, p, err)
		}
		if !redo {
			return rs, nil
		}
		drain(rs)
	}
}

func (c *ReplicaClient) leaseError(op, p string, err error) error {
	return fmt.Errorf("webdav replica %s: lease: %s %s: %w", c.redacted, op, p, err)
}

// drain reads what is left of a small response so the connection is
// reused, and closes it.
func drain(rs *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rs.Body, leaseMaxSize))
	rs.Body.Close()
}

// mkdirAll creates a collection and its parents. When two clients create
// the same one at once the loser gets an error (Apache: 403) although the
// collection now exists, so a failure is checked with a PROPFIND and the
// creation retried a bounded number of times.
func (c *ReplicaClient) mkdirAll(ctx context.Context, p string) error {
	var err error
	for range 3 {
		if err = c.begin(ctx).MkdirAll(p, 0o755); err == nil || ctx.Err() != nil {
			return err
		}
		if fi, serr := c.begin(ctx).Stat(p); serr == nil && fi.IsDir() {
			return nil
		}
	}
	return err
}
