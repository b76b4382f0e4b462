package replicatest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/replicatest"
)

// The suite passes against a correct in-memory backend.
func TestRunConformance_MemClient(t *testing.T) {
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient { return newMemClient("") })
}

// buggyEnv selects the broken backend in the child process of
// TestRunConformance_CatchesBugs.
const buggyEnv = "REPLICATEST_BUGGY_CLIENT"

// TestBuggyClient is the child: it runs the suite against a backend with one
// bug and is expected to fail. It does nothing in a normal run.
func TestBuggyClient(t *testing.T) {
	bug := os.Getenv(buggyEnv)
	if bug == "" {
		t.Skip("run by TestRunConformance_CatchesBugs only")
	}
	replicatest.RunConformance(t, func(t *testing.T) litestream.ReplicaClient { return newMemClient(bug) })
}

// Each rule of the contract, broken on purpose, makes the suite fail with
// a message that says what is wrong.
func TestRunConformance_CatchesBugs(t *testing.T) {
	for _, tc := range []struct{ bug, subtest, message string }{
		{"seek-exact", "Seek", "LTXFiles(level 0, seek 0000000000000001"},
		{"seek-contains", "Seek", "LTXFiles(level 0, seek 0000000000000003"},
		{"all-levels", "WriteListRead", "a file of level 1"},
		{"unsorted", "WriteListRead", "not in ascending (minTXID, maxTXID) order"},
		{"first-page-only", "ListOrderAndPagination", "got 1000 files"},
		{"upload-time", "Timestamps", "want the header timestamp"},
		{"plain-not-found", "MissingFile", "does not wrap os.ErrNotExist"},
		{"delete-missing-fails", "Delete", "DeleteLTXFiles (one of them missing)"},
		{"not-atomic", "WriteInProgressInvisible", "want 1 files"},
		{"ignore-ctx", "ContextCancellation", "want an error wrapping context.Canceled"},
	} {
		t.Run(tc.bug, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBuggyClient$/^"+tc.subtest+"$", "-test.v")
			cmd.Env = append(os.Environ(), buggyEnv+"="+tc.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a backend with bug %q:\n%s", tc.bug, out)
			}
			if !strings.Contains(string(out), tc.message) {
				t.Fatalf("bug %q: the failure does not mention %q:\n%s", tc.bug, tc.message, out)
			}
		})
	}
}
