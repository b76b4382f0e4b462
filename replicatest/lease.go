package replicatest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
)

// NewLeaserPairFunc returns two clients on the same fresh, empty replica,
// as two processes on different hosts would have them, and registers
// their cleanup with t.Cleanup.
type NewLeaserPairFunc = func(t *testing.T) (a, b litestream.Leaser)

// RunLeaseConformance checks a backend's single-writer lease
// (litestream.Leaser): exclusive acquisition, renewal and release
// conditional on the lease being unchanged, takeover only after expiry,
// and exactly one winner among concurrent contenders.
func RunLeaseConformance(t *testing.T, newPair NewLeaserPairFunc) {
	t.Helper()
	subtests := []struct {
		name string
		run  func(t *testing.T, newPair NewLeaserPairFunc)
	}{
		{"AcquireRenewRelease", testLeaseAcquireRenewRelease},
		{"ExpiredTakeover", testLeaseExpiredTakeover},
		{"ConcurrentAcquire", testLeaseConcurrentAcquire},
		{"CancelledContext", testLeaseCancelled},
	}
	for _, st := range subtests {
		t.Run(st.name, func(t *testing.T) { st.run(t, newPair) })
	}
}

// wantHeld checks that err says owner holds the lease until expires.
func wantHeld(t *testing.T, err error, owner string, expires time.Time) {
	t.Helper()
	if !errors.Is(err, litestream.ErrLeaseHeld) {
		t.Fatalf("got error %v, want one matching ErrLeaseHeld (held by %s)", err, owner)
	}
	var held *litestream.LeaseHeldError
	if !errors.As(err, &held) {
		t.Fatalf("error %v is not a *LeaseHeldError", err)
	}
	if held.Owner != owner {
		t.Fatalf("lease reported held by %q, want %q (error: %v)", held.Owner, owner, err)
	}
	if d := held.Expires.Sub(expires); !expires.IsZero() && (d < -time.Millisecond || d > time.Millisecond) {
		t.Fatalf("lease reported held until %s, want %s", held.Expires, expires)
	}
	if held.Object == "" || !strings.Contains(err.Error(), owner) {
		t.Fatalf("error %q does not name the lease object and its holder", err)
	}
}

func mustAcquire(t *testing.T, l litestream.Leaser, owner string, ttl time.Duration) *litestream.Lease {
	t.Helper()
	before := time.Now()
	lease, err := l.AcquireLease(testContext(t), owner, ttl)
	if err != nil {
		t.Fatalf("%s: AcquireLease: %v", owner, err)
	}
	if lease.Owner != owner || lease.Token == "" {
		t.Fatalf("%s: AcquireLease returned owner %q token %q", owner, lease.Owner, lease.Token)
	}
	if lease.Expires.Before(before.Add(ttl)) || lease.Expires.After(time.Now().Add(ttl)) {
		t.Fatalf("%s: lease expires at %s, want now+%s", owner, lease.Expires, ttl)
	}
	return lease
}

func testLeaseAcquireRenewRelease(t *testing.T, newPair NewLeaserPairFunc) {
	ctx := testContext(t)
	a, b := newPair(t)
	const ttl = time.Minute
	la := mustAcquire(t, a, "owner-a", ttl)
	_, err := b.AcquireLease(ctx, "owner-b", ttl)
	wantHeld(t, err, "owner-a", la.Expires)

	// The lease object is not an LTX file.
	if rc, ok := a.(litestream.ReplicaClient); ok {
		for level := 0; level <= litestream.SnapshotLevel; level++ {
			if infos, err := list(ctx, rc, level, 0, false); err != nil || len(infos) != 0 {
				t.Fatalf("level %d lists %d files (%v) with only a lease stored", level, len(infos), err)
			}
		}
	}

	// The holder acquiring again (a restart of the same instance) renews.
	la2 := mustAcquire(t, a, "owner-a", ttl)
	if la2.Token == la.Token {
		t.Fatal("re-acquiring did not rewrite the lease")
	}
	_, err = a.RenewLease(ctx, la, ttl)
	wantHeld(t, err, "owner-a", la2.Expires) // a renewal from a stale lease is refused
	la3, err := a.RenewLease(ctx, la2, ttl)
	if err != nil {
		t.Fatalf("RenewLease: %v", err)
	}
	if la3.Token == la2.Token || la3.Expires.Before(la2.Expires) || la3.Owner != "owner-a" {
		t.Fatalf("renewal gave %+v after %+v", la3, la2)
	}
	_, err = b.AcquireLease(ctx, "owner-b", ttl)
	wantHeld(t, err, "owner-a", la3.Expires)

	// Releasing a stale lease does nothing; releasing the current one
	// lets another process in at once.
	if err := a.ReleaseLease(ctx, la2); err != nil {
		t.Fatalf("ReleaseLease of a stale lease: %v", err)
	}
	_, err = b.AcquireLease(ctx, "owner-b", ttl)
	wantHeld(t, err, "owner-a", la3.Expires)
	if err := a.ReleaseLease(ctx, la3); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	lb := mustAcquire(t, b, "owner-b", ttl)
	_, err = a.RenewLease(ctx, la3, ttl)
	wantHeld(t, err, "owner-b", lb.Expires)
	if err := b.ReleaseLease(ctx, lb); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
}

func testLeaseExpiredTakeover(t *testing.T, newPair NewLeaserPairFunc) {
	ctx := testContext(t)
	a, b := newPair(t)
	const ttl = 2 * time.Second
	la := mustAcquire(t, a, "owner-a", ttl)
	_, err := b.AcquireLease(ctx, "owner-b", time.Minute)
	wantHeld(t, err, "owner-a", la.Expires)

	// Poll (bounded) until b takes the lease over; never before expiry.
	deadline := time.Now().Add(ttl + 30*time.Second)
	var lb *litestream.Lease
	for lb == nil {
		lease, err := b.AcquireLease(ctx, "owner-b", time.Minute)
		if err == nil {
			lb = lease
			break
		}
		wantHeld(t, err, "owner-a", la.Expires)
		if time.Now().After(deadline) {
			t.Fatalf("expired lease not taken over within %s", ttl+30*time.Second)
		}
		time.Sleep(ttl / 10) // poll interval
	}
	if time.Now().Before(la.Expires) {
		t.Fatalf("lease taken over before it expired (%s)", la.Expires)
	}

	// The former holder learns it lost the lease; its release is a no-op.
	_, err = a.RenewLease(ctx, la, ttl)
	wantHeld(t, err, "owner-b", lb.Expires)
	if err := a.ReleaseLease(ctx, la); err != nil {
		t.Fatalf("ReleaseLease of a lost lease: %v", err)
	}
	_, err = a.AcquireLease(ctx, "owner-c", ttl)
	wantHeld(t, err, "owner-b", lb.Expires)
}

func testLeaseConcurrentAcquire(t *testing.T, newPair NewLeaserPairFunc) {
	a, b := newPair(t)
	clients := []litestream.Leaser{a, b}
	const contenders = 8
	race := func(round string) *litestream.Lease {
		t.Helper()
		ctx := testContext(t)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []*litestream.Lease
		var errs []error
		for i := 0; i < contenders; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				lease, err := clients[i%2].AcquireLease(ctx, fmt.Sprintf("%s-%d", round, i), time.Minute)
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won = append(won, lease)
				} else {
					errs = append(errs, err)
				}
			}(i)
		}
		close(start)
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("%s: %d of %d concurrent contenders got the lease, want exactly 1 (errors: %v)", round, len(won), contenders, errs)
		}
		for _, err := range errs {
			wantHeld(t, err, won[0].Owner, won[0].Expires)
		}
		return won[0]
	}
	won := race("empty") // nobody holds it yet
	if err := a.ReleaseLease(testContext(t), won); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}

	// An expired lease: every contender sees it expired.
	la := mustAcquire(t, a, "short", time.Second)
	time.Sleep(time.Until(la.Expires) + 10*time.Millisecond) // let the lease expire: the condition under test
	race("expired")
}

func testLeaseCancelled(t *testing.T, newPair NewLeaserPairFunc) {
	a, _ := newPair(t)
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	start := time.Now()
	if lease, err := a.AcquireLease(ctx, "owner-a", time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("AcquireLease with a cancelled context: %+v, %v; want context.Canceled", lease, err)
	}
	if time.Since(start) > promptly {
		t.Fatalf("AcquireLease with a cancelled context took %s", time.Since(start))
	}
}
