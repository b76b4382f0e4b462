package litestream

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream/ltxfile"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// Full also restores the latest state to a temporary file and runs
	// PRAGMA integrity_check on it.
	Full bool
	// DBPath, with Full, is the live database to compare the restored
	// pages with.
	DBPath string
	// TempDir holds the temporary restore; default os.TempDir().
	TempDir string
}

// VerifyReport is what Verify found. Problems is empty for a healthy
// replica.
type VerifyReport struct {
	Files          int      `json:"files"`
	Bytes          int64    `json:"bytes"`
	LevelFiles     [10]int  `json:"level_files"`
	LatestTXID     ltx.TXID `json:"latest_txid"`
	PlanFiles      int      `json:"plan_files"`
	IntegrityCheck string   `json:"integrity_check,omitempty"`
	LiveComparison string   `json:"live_comparison,omitempty"`
	Problems       []string `json:"problems"`
}

// OK reports whether no problem was found.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

func (r *VerifyReport) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Verify checks a replica the way pgBackRest's verify does: the TXID chain
// of every level (order, gaps, overlaps), every file's header and
// checksum, that the latest state has a restore plan, and with Full that
// the restored database passes integrity_check. The error is for failures
// to run the check (e.g. the replica is unreachable); what is wrong with
// the replica goes into the report.
func Verify(ctx context.Context, client ReplicaClient, opt VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{Problems: []string{}}
	problems, err := ValidateLevels(ctx, client)
	if err != nil {
		return nil, err
	}
	for _, p := range problems {
		rep.problem("%v", p)
	}
	var pageSize uint32
	for level := 0; level <= SnapshotLevel; level++ {
		infos, err := LTXFileInfos(ctx, client, level, 0, false)
		if err != nil {
			return nil, err
		}
		rep.LevelFiles[level] = len(infos)
		for _, info := range infos {
			rep.Files++
			rep.Bytes += info.Size
			hdr, err := verifyFile(ctx, client, info)
			name := fmt.Sprintf("level %d file %s", level, ltx.FormatFilename(info.MinTXID, info.MaxTXID))
			switch {
			case err != nil:
				rep.problem("%s: %v", name, err)
			case hdr.MinTXID != info.MinTXID || hdr.MaxTXID != info.MaxTXID:
				rep.problem("%s: header says TXIDs %s-%s", name, hdr.MinTXID, hdr.MaxTXID)
			case pageSize != 0 && hdr.PageSize != pageSize:
				rep.problem("%s: page size %d differs from %d in other files", name, hdr.PageSize, pageSize)
			default:
				pageSize = hdr.PageSize
			}
		}
	}
	if rep.Files == 0 {
		rep.problem("replica holds no files")
		return rep, nil
	}
	plan, err := CalcRestorePlan(ctx, client, RestoreTarget{})
	if err != nil {
		rep.problem("latest state is not restorable: %v", err)
		return rep, nil
	}
	rep.PlanFiles, rep.LatestTXID = len(plan), plan[len(plan)-1].MaxTXID
	if opt.Full {
		if err := verifyRestore(ctx, client, opt, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// verifyFile decodes a whole file, checking its file checksum.
func verifyFile(ctx context.Context, client ReplicaClient, info *ltx.FileInfo) (ltx.Header, error) {
	rc, err := client.OpenLTXFile(ctx, info.Level, info.MinTXID, info.MaxTXID, 0, 0)
	if err != nil {
		return ltx.Header{}, err
	}
	defer rc.Close()
	return ltxfile.Verify(rc)
}

// verifyRestore restores the latest state to a temporary file, checks its
// integrity and, if a live database is given, compares them.
func verifyRestore(ctx context.Context, client ReplicaClient, opt VerifyOptions, rep *VerifyReport) error {
	dir, err := os.MkdirTemp(opt.TempDir, "litestream-verify-")
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "restored.db")
	res, err := Restore(ctx, client, RestoreOptions{OutputPath: out, IntegrityCheck: "full"})
	if err != nil {
		rep.IntegrityCheck = "failed"
		rep.problem("restore of the latest state failed: %v", err)
		return nil
	}
	rep.IntegrityCheck = "ok"
	if opt.DBPath != "" {
		rep.LiveComparison = compareWithLive(ctx, out, opt.DBPath, res.TXID)
	}
	return nil
}

// compareWithLive compares the restored database's pages with the live
// database's current committed state. A difference is reported, not
// treated as a problem: the application may have committed after the
// replica's newest TXID.
func compareWithLive(ctx context.Context, restored, live string, txid ltx.TXID) string {
	a, err := databaseChecksum(ctx, restored)
	if err != nil {
		return "restored database unreadable: " + err.Error()
	}
	b, err := databaseChecksum(ctx, live)
	if err != nil {
		return "live database unreadable: " + err.Error()
	}
	if a == b {
		return fmt.Sprintf("identical at TXID %s", txid)
	}
	return fmt.Sprintf("differs from TXID %s (the live database may have newer commits)", txid)
}

// databaseChecksum returns the LTX database checksum of a database's
// committed state, read through SQLite so a live WAL is included.
func databaseChecksum(ctx context.Context, path string) (ltx.Checksum, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	sum := ltx.ChecksumFlag
	for rows.Next() {
		var pgno uint32
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			return 0, err
		}
		if len(data) == 0 {
			continue // the lock page reads as empty
		}
		sum = ltx.ChecksumFlag | (sum ^ ltx.ChecksumPage(pgno, data))
	}
	return sum, rows.Err()
}
