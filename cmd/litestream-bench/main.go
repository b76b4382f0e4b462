// Command litestream-bench measures the performance figures of issue 7
// against any binary with Litestream's command line, from the outside:
// it writes to SQLite databases itself (modernc.org/sqlite), runs
// `BIN replicate -config ...` as a child process with a file replica,
// watches the replica directory with inotify to see when a commit
// arrives, and reads the child's CPU time and memory from /proc. The same
// run can therefore measure this project and an upstream Litestream
// binary side by side (run it twice with different -bin).
//
// It touches nothing but files in its work directory, which it removes.
package main

import (
	"context"
	"encoding/json"

	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "litestream-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	s, err := parseSettings(os.Args[1:])
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	work, err := os.MkdirTemp(s.Dir, "litestream-bench-")
	if err != nil {
		return err
	}
	b := &bench{s: s, work: work, log: os.Stderr}
	defer b.cleanup()

	if b.bin, err = resolveBin(s.Bin, work); err != nil {
		return err
	}
	b.version = binVersion(b.bin)
	b.logf("binary %s (%s), work dir %s", b.bin, b.version, work)
	if err := b.checkDisk(); err != nil {
		return err
	}

	rep := &report{Bin: b.bin, Version: b.version, Machine: machineInfo(), Settings: s}
	for i := 0; i < s.Runs; i++ {
		res := runResult{}
		for _, r := range b.rows() {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			b.logf("run %d/%d: %s (load %.2f)", i+1, s.Runs, r.name, loadAvg())
			m, err := b.runRow(ctx, r)
			if err != nil {
				b.logf("%s: %v", r.name, err)
				m = metrics{}
				res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", r.name, err))
			}
			res.merge(m)
		}
		rep.Runs = append(rep.Runs, res)
	}
	rep.summarize()
	rep.print(os.Stdout)
	if s.JSON != "" {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(s.JSON, out, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// bench holds what every row needs.
type bench struct {
	s       *settings
	bin     string
	version string
	work    string
	log     *os.File
	seq     int
	live    []*child // children to kill if the run is interrupted
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// rowDir returns a fresh directory for one measurement.
func (b *bench) rowDir(name string) (string, error) {
	b.seq++
	dir := filepath.Join(b.work, fmt.Sprintf("%02d-%s", b.seq, name))
	return dir, os.MkdirAll(dir, 0o755)
}

// runRow runs one row in its own directory, removed afterwards, and
// records the load average around it.
func (b *bench) runRow(ctx context.Context, r row) (metrics, error) {
	load0 := loadAvg()
	m, err := r.fn(ctx)
	if m != nil {
		m["load_"+r.name] = (load0 + loadAvg()) / 2
	}
	for _, c := range b.live {
		_, _ = c.stop(5 * time.Second)
	}
	b.live = nil
	if !b.s.Keep {
		ents, _ := os.ReadDir(b.work)
		for _, e := range ents {
			if e.IsDir() && e.Name() != "bin" {
				_ = os.RemoveAll(filepath.Join(b.work, e.Name()))
			}
		}
	}
	return m, err
}

func (b *bench) cleanup() {
	for _, c := range b.live {
		_, _ = c.stop(5 * time.Second)
	}
	if b.s.Keep {
		b.logf("kept %s", b.work)
		return
	}
	_ = os.RemoveAll(b.work)
}

// resolveBin returns bin, or builds ./cmd/litestream of this module.
func resolveBin(bin, work string) (string, error) {
	if bin != "" {
		return exec.LookPath(bin)
	}
	out := filepath.Join(work, "bin", "litestream")
	cmd := exec.Command("go", "build", "-o", out, "github.com/sqlitebackup/litestream/cmd/litestream")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build litestream (run from the module, or pass -bin): %w", err)
	}
	return out, nil
}

func binVersion(bin string) string {
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		return "unknown version"
	}
	return strings.TrimSpace(string(out))
}

// checkDisk makes sure the largest row fits: the restore row holds the
// database, the replica (up to ~2 copies), a cp copy and a restored copy.
func (b *bench) checkDisk() error {
	if !slices.Contains(b.s.Rows, "restore") {
		return nil
	}
	free, err := freeBytes(b.work)
	if err != nil {
		return err
	}
	need := 5*b.s.RestoreSize + 512<<20
	if free < need {
		return fmt.Errorf("restore row needs about %d MB free in %s, df says %d MB: lower -restore-size or use -dir",
			need>>20, b.work, free>>20)
	}
	b.logf("disk: %d MB free, restore row needs about %d MB", free>>20, need>>20)
	return nil
}

// machineInfo records what the numbers were measured on.
func machineInfo() map[string]string {
	info := map[string]string{"nproc": fmt.Sprint(runtime.NumCPU()), "goos": runtime.GOOS}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				info["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			info["memory"] = strings.Join(strings.Fields(line)[1:], " ")
		}
	}
	return info
}
