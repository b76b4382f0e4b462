package litestream_test

import (
	"context"
	"testing"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/file"
)

// FuzzCalcRestorePlan builds a replica listing from arbitrary bytes (each
// 3 bytes: level, min TXID, length) and checks the planner never panics
// and only returns contiguous chains starting at TXID 1.
func FuzzCalcRestorePlan(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 2, 0, 0, 3, 0}, uint8(0))
	f.Add([]byte{9, 1, 5, 0, 6, 0, 1, 7, 3}, uint8(7))
	f.Add([]byte{1, 1, 3, 0, 5, 0, 2, 1, 9}, uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, target uint8) {
		dir := t.TempDir()
		client := file.NewReplicaClient(dir)
		ctx := context.Background()
		seen := map[[3]int]bool{}
		for i := 0; i+2 < len(b) && i < 60; i += 3 {
			level := int(b[i]) % 10
			minTXID := ltx.TXID(b[i+1]%32 + 1)
			maxTXID := minTXID + ltx.TXID(b[i+2]%8)
			if level == 0 {
				maxTXID = minTXID
			}
			key := [3]int{level, int(minTXID), int(maxTXID)}
			if seen[key] {
				continue
			}
			seen[key] = true
			data := newTinyLTX(t, minTXID, maxTXID)
			if _, err := client.WriteLTXFile(ctx, level, minTXID, maxTXID, bytesReader(data)); err != nil {
				t.Fatal(err)
			}
		}
		plan, err := litestream.CalcRestorePlan(ctx, client, litestream.RestoreTarget{TXID: ltx.TXID(target % 40)})
		if err != nil {
			return
		}
		var cur ltx.TXID
		for i, info := range plan {
			if (i == 0 && info.MinTXID != 1) || (i > 0 && (info.MinTXID > cur+1 || info.MaxTXID <= cur)) {
				t.Fatalf("plan is not a chain from TXID 1: %v", planNames(plan))
			}
			cur = info.MaxTXID
		}
		if target%40 != 0 && cur != ltx.TXID(target%40) {
			t.Fatalf("plan ends at %s, target %d", cur, target%40)
		}
	})
}
