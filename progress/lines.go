package progress

import (
	"io"
	"os"
	"sync"
	"time"
)

// Event is one report of an operation's progress: totals done so far and,
// when known, at completion. Finished marks its last report.
type Event struct {
	Label             string
	Bytes, TotalBytes int64
	Pages, TotalPages int64
	Finished          bool
}

// Lines draws a sequence of operations on a terminal, one bar line each:
// an event with a new label, or after the previous operation finished,
// starts a new line. Its Write method passes other output (log lines)
// through without tearing the bar: the bar is erased, the text written,
// and the bar drawn again below it.
//
// A nil *Lines draws nothing, so callers need no terminal checks.
type Lines struct {
	w     io.Writer
	width func() int
	now   func() time.Time // tests replace the clock

	mu    sync.Mutex
	bar   *Bar // the operation in progress; nil between operations
	label string
}

// LinesForFile returns Lines drawing on f when f is a terminal and quiet
// is false (pass -json or JSON logging as quiet); otherwise nil.
func LinesForFile(f *os.File, quiet bool) *Lines {
	if quiet || f == nil || !IsTerminal(f) {
		return nil
	}
	return NewLines(f, func() int { return terminalWidth(f) })
}

// NewLines returns Lines drawing on w, which must be a terminal of the
// given width.
func NewLines(w io.Writer, width func() int) *Lines {
	return &Lines{w: w, width: width, now: time.Now}
}

// Report draws e; it may be called from any goroutine.
func (l *Lines) Report(e Event) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar != nil && l.label != e.Label {
		l.bar.Done()
		l.bar = nil
	}
	if l.bar == nil {
		l.bar, l.label = NewBar(l.w, e.Label, Totals{}, l.width), e.Label
		l.bar.now = l.now
	}
	l.bar.SetTotals(Totals{Bytes: e.TotalBytes, Pages: e.TotalPages})
	l.bar.Update(e.Bytes, e.Pages)
	if e.Finished {
		l.bar.Done()
		l.bar = nil
	}
}

// Close ends the line of an operation that never reported its end (the
// command failed half-way).
func (l *Lines) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar != nil {
		l.bar.Done()
		l.bar = nil
	}
}

// Write writes p (whole lines, as a logger does) above the current bar.
func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bar == nil {
		return l.w.Write(p)
	}
	if _, err := io.WriteString(l.w, "\r\x1b[K"); err != nil {
		return 0, err
	}
	n, err := l.w.Write(p)
	l.bar.redraw()
	return n, err
}
