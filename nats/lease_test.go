package nats_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// TestLeaseConformance runs the shared lease suite against the NATS test
// server: two clients (two connections) on one bucket, alternately with
// and without a key prefix.
func TestLeaseConformance(t *testing.T) {
	testBucket(t) // skips with a message when the server is not configured
	n := 0
	replicatest.RunLeaseConformance(t, func(t *testing.T) (litestream.Leaser, litestream.Leaser) {
		cfg, _ := testBucket(t)
		if n++; n%2 == 0 {
			cfg.Path = "db/" + randomHex(t, 4)
		}
		return newClient(t, cfg), newClient(t, cfg)
	})
}

// TestLeaseIsolation: the lease is invisible to object listings and to
// DeleteAll, and two databases under different paths of one bucket have
// separate leases.
func TestLeaseIsolation(t *testing.T) {
	cfg, store := testBucket(t)
	ctx := context.Background()
	cfg.Path = "one"
	one := newClient(t, cfg)
	cfg.Path = "two"
	two := newClient(t, cfg)

	l1, err := one.AcquireLease(ctx, "owner-one", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.AcquireLease(ctx, "owner-two", time.Minute); err != nil {
		t.Fatalf("a second database in the same bucket cannot take its own lease: %v", err)
	}
	if _, err := one.WriteLTXFile(ctx, 0, 1, 1, bytes.NewReader(ltxBytes(t, 1, 1, time.Now(), []byte("data")))); err != nil {
		t.Fatal(err)
	}
	objs, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.Name, "lock") {
			t.Fatalf("the lease shows up as object %q", o.Name)
		}
	}
	if err := one.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if l1, err = one.RenewLease(ctx, l1, time.Minute); err != nil {
			t.Fatalf("renewal %d (after DeleteAll): %v", i, err)
		}
	}

	// Each publish rolls the subject up: one message per lease.
	subj := "$O." + cfg.Bucket + ".C.litestream-lease-" + base64.URLEncoding.EncodeToString([]byte("one/lock.json"))
	info, err := store.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	js := info.(*jetstream.ObjectBucketStatus).StreamInfo()
	stream, err := jetstreamFor(t).Stream(ctx, js.Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	si, err := stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	if n := si.State.Subjects[subj]; n != 1 {
		t.Fatalf("subject %s holds %d messages, want 1 (subjects: %v)", subj, n, si.State.Subjects)
	}
	m, err := stream.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := litestream.UnmarshalLease(m.Data); err != nil || got.Owner != "owner-one" || !got.Expires.Equal(l1.Expires) {
		t.Fatalf("lease message %s (%v), want owner-one until %s", m.Data, err, l1.Expires)
	}
}

func jetstreamFor(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := natsgo.Connect(os.Getenv("NATS_URL"), natsgo.UserInfo(os.Getenv("NATS_USER"), os.Getenv("NATS_PASSWORD")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestLeaseForeignToken: a renewal with a token that is no sequence
// number (another backend's, or a probe's) is refused naming the holder,
// and releasing with it does nothing.
func TestLeaseForeignToken(t *testing.T) {
	cfg, _ := testBucket(t)
	ctx := context.Background()
	c := newClient(t, cfg)
	probe := &litestream.Lease{Owner: "probe", Token: `"never-a-token"`}
	var held *litestream.LeaseHeldError
	if _, err := c.RenewLease(ctx, probe, time.Minute); !errors.As(err, &held) || held.Owner != "nobody (no lease stored)" {
		t.Fatalf("probe of an empty replica: %v", err)
	}
	l, err := c.AcquireLease(ctx, "owner-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RenewLease(ctx, probe, time.Minute); !errors.As(err, &held) || held.Owner != "owner-a" || !held.Expires.Equal(l.Expires) {
		t.Fatalf("probe of a held lease: %v", err)
	}
	if err := c.ReleaseLease(ctx, probe); err != nil {
		t.Fatalf("release with a foreign token: %v", err)
	}
	if _, err := c.RenewLease(ctx, l, time.Minute); err != nil {
		t.Fatalf("lease lost after a release with a foreign token: %v", err)
	}
}
