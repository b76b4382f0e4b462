package ltxheader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/superfly/ltx"
)

func header(t *testing.T, ts time.Time) []byte {
	t.Helper()
	hdr := ltx.Header{Version: ltx.Version, PageSize: 4096, Commit: 1, MinTXID: 1, MaxTXID: 1, Timestamp: ts.UnixMilli()}
	b, err := hdr.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTimestamp(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	if got, err := Timestamp(header(t, ts)); err != nil || !got.Equal(ts) {
		t.Fatalf("Timestamp = %v, %v; want %v", got, err, ts)
	}
	if _, err := Timestamp(header(t, ts)[:50]); err == nil {
		t.Fatal("short header accepted")
	}
	bad := header(t, ts)
	bad[0] = 'X'
	if _, err := Timestamp(bad); err == nil {
		t.Fatal("bad magic accepted")
	}
}

func TestFillCreatedAt(t *testing.T) {
	mtime := time.Unix(100, 0).UTC()
	ts := time.Date(2024, 1, 2, 3, 4, 5, 678_000_000, time.UTC)
	var infos []*ltx.FileInfo
	for i := 1; i <= 20; i++ {
		infos = append(infos, &ltx.FileInfo{MinTXID: ltx.TXID(i), MaxTXID: ltx.TXID(i), CreatedAt: mtime})
	}
	got, err := FillCreatedAt(context.Background(), infos, 4, func(_ context.Context, info *ltx.FileInfo) ([]byte, error) {
		switch info.MinTXID {
		case 3:
			return nil, fmt.Errorf("gone: %w", os.ErrNotExist) // deleted since listed
		case 5:
			return []byte("garbage"), nil // not an LTX header: keeps the mtime
		}
		return header(t, ts), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 19 {
		t.Fatalf("%d files, want 19 (the deleted one dropped)", len(got))
	}
	for _, info := range got {
		want := ts
		if info.MinTXID == 5 {
			want = mtime
		}
		if info.MinTXID == 3 || !info.CreatedAt.Equal(want) {
			t.Fatalf("file %d: CreatedAt %v, want %v", info.MinTXID, info.CreatedAt, want)
		}
	}

	boom := errors.New("boom")
	if _, err := FillCreatedAt(context.Background(), infos[:3], 2, func(context.Context, *ltx.FileInfo) ([]byte, error) {
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the read error", err)
	}
}
