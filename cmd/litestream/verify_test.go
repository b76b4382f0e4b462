package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVerifyCommand(t *testing.T) {
	_, replicaDir := buildReplica(t)
	url := "file://" + replicaDir
	code, stdout, stderr := runCLI(t, "verify", "-json", "-full", url)
	if code != 0 {
		t.Fatalf("verify of a healthy replica: %d %s %s", code, stdout, stderr)
	}
	var rep struct {
		OK             bool     `json:"ok"`
		Files          int      `json:"files"`
		LatestTXID     string   `json:"latest_txid"`
		IntegrityCheck string   `json:"integrity_check"`
		Problems       []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("verify -json output: %v\n%s", err, stdout)
	}
	if !rep.OK || rep.Files != 3 || rep.LatestTXID != "0000000000000003" || rep.IntegrityCheck != "ok" {
		t.Fatalf("report %+v", rep)
	}
	p := filepath.Join(replicaDir, "ltx", "0", "0000000000000003-0000000000000003.ltx")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-20], 0o644)
	expectError(t, []string{"verify found problems"}, "verify", url)
	code, stdout, _ = runCLI(t, "verify", url)
	if code == 0 || !containsAll(stdout, "0000000000000003-0000000000000003.ltx", "problem") {
		t.Fatalf("verify of a corrupt replica: %d\n%s", code, stdout)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
