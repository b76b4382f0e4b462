package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// dbEntry is one database of a replicate config.
type dbEntry struct {
	Path            string
	Replica         string        // file replica directory
	MonitorInterval time.Duration // 0: the binary's default
	SyncInterval    time.Duration // 0: the binary's default
}

// writeConfig writes a Litestream v0.5 YAML config. Only keys both tools
// accept are used, and defaults are left unset so each binary runs with
// its own defaults. extra is copied at the top (e.g. "addr: ..." to
// profile the child).
func writeConfig(path string, dbs []dbEntry, extra string) error {
	var b strings.Builder
	if extra != "" {
		b.WriteString(strings.TrimSpace(extra) + "\n")
	}
	b.WriteString("dbs:\n")
	for _, d := range dbs {
		fmt.Fprintf(&b, "  - path: %q\n", d.Path)
		if d.MonitorInterval > 0 {
			fmt.Fprintf(&b, "    monitor-interval: %s\n", d.MonitorInterval)
		}
		fmt.Fprintf(&b, "    replica:\n      type: file\n      path: %q\n", d.Replica)
		if d.SyncInterval > 0 {
			fmt.Fprintf(&b, "      sync-interval: %s\n", d.SyncInterval)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// child is a running `BIN replicate -config PATH`.
type child struct {
	cmd     *exec.Cmd
	lines   atomic.Int64 // log lines printed so far (stdout + stderr)
	logFile *os.File
	logMu   sync.Mutex
	tail    []string // last lines, for error messages
	readers sync.WaitGroup
	done    chan struct{}
	waitErr error
	peak    atomic.Int64 // highest VmHWM seen by sampleMem
}

// startReplicate starts the replicate command; its output is counted
// line by line and copied to logPath.
func startReplicate(bin, configPath, logPath string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create child log: %w", err)
	}
	c := &child{logFile: logFile, done: make(chan struct{})}
	c.cmd = exec.Command(bin, "replicate", "-config", configPath)
	c.cmd.Dir = filepath.Dir(configPath)
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s replicate: %w", bin, err)
	}
	c.readers.Add(2)
	go c.count(stdout)
	go c.count(stderr)
	go func() {
		c.readers.Wait() // Wait closes the pipes: read them to the end first
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) count(r io.Reader) {
	defer c.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.lines.Add(1)
		c.logMu.Lock()
		fmt.Fprintln(c.logFile, sc.Text())
		c.tail = append(c.tail, sc.Text())
		if len(c.tail) > 20 {
			c.tail = c.tail[1:]
		}
		c.logMu.Unlock()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports an error if the child is no longer running.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("replicate exited early (%v); last output:\n%s", c.waitErr, c.lastLines())
	default:
		return nil
	}
}

func (c *child) lastLines() string {
	c.logMu.Lock()
	defer c.logMu.Unlock()
	return strings.Join(c.tail, "\n")
}

// cpu returns the child's CPU time so far.
func (c *child) cpu() (time.Duration, error) { return procCPU(c.pid()) }

// mem reads the child's current and peak RSS and remembers the peak.
func (c *child) mem() (memStatus, error) {
	m, err := procMem(c.pid())
	if err == nil && m.HWM > c.peak.Load() {
		c.peak.Store(m.HWM)
	}
	return m, err
}

// stop sends SIGTERM (the final sync runs) and waits, killing the child
// after timeout. It returns the peak RSS from the kernel's rusage.
func (c *child) stop(timeout time.Duration) (peakRSS int64, err error) {
	_, _ = c.mem()
	defer c.logFile.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return c.peak.Load(), fmt.Errorf("replicate did not stop within %s after SIGTERM", timeout)
	}
	peak := c.peak.Load()
	if ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peak = max(peak, ru.Maxrss<<10) // Maxrss is in KiB on Linux
	}
	var exitErr *exec.ExitError
	if c.waitErr != nil && !errors.As(c.waitErr, &exitErr) {
		return peak, c.waitErr
	}
	return peak, nil
}

// window measures a child over a period: CPU, log lines, and whatever the
// caller counts between begin and end.
type window struct {
	start    time.Time
	cpu0     time.Duration
	lines0   int64
	Duration time.Duration
	CPU      time.Duration
	Lines    int64
}

func (c *child) begin() (*window, error) {
	cpu, err := c.cpu()
	if err != nil {
		return nil, err
	}
	return &window{start: time.Now(), cpu0: cpu, lines0: c.lines.Load()}, nil
}

func (c *child) end(w *window) error {
	cpu, err := c.cpu()
	if err != nil {
		return err
	}
	w.Duration, w.CPU, w.Lines = time.Since(w.start), cpu-w.cpu0, c.lines.Load()-w.lines0
	return nil
}

// cpuPercent is the share of one core used in the window.
func (w *window) cpuPercent() float64 {
	return 100 * w.CPU.Seconds() / w.Duration.Seconds()
}

// sampleMem polls the child's RSS until ctx ends, so a short peak of a
// process that then exits is not missed.
func (c *child) sampleMem(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-t.C:
			_, _ = c.mem()
		}
	}
}

// runTimed runs BIN args..., sampling its peak RSS, and returns the wall
// time, peak RSS and CPU time.
func runTimed(bin string, args ...string) (wall time.Duration, peakRSS int64, cpu time.Duration, err error) {
	cmd := exec.Command(bin, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, fmt.Errorf("start %s: %w", bin, err)
	}
	done := make(chan struct{})
	var polled atomic.Int64
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if m, err := procMem(cmd.Process.Pid); err == nil && m.HWM > polled.Load() {
					polled.Store(m.HWM)
				}
			}
		}
	}()
	err = cmd.Wait()
	wall = time.Since(start)
	close(done)
	if err != nil {
		return wall, 0, 0, fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, out.String())
	}
	peakRSS = polled.Load()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peakRSS = max(peakRSS, ru.Maxrss<<10)
	}
	return wall, peakRSS, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
