// Package progress draws one-line progress bars (bytes and pages done,
// percentage, rate, ETA; the elapsed time once finished) for long
// operations such as restores and the full images, uploads and snapshots
// of `replicate -once`, on a terminal only: when the output is not a
// terminal, or the command prints JSON, nothing is drawn, so logs and
// pipes stay clean. Bar draws one operation; Lines draws a sequence of
// them, one line each, and lets log lines through without tearing a bar.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Reporter receives an operation's progress. Update may be called from
// any goroutine and as often as convenient: drawing is rate-limited.
type Reporter interface {
	// Update reports the totals done so far (not increments).
	Update(bytes, pages int64)
	// SetTotals sets what the operation will have done when complete,
	// for operations that learn it only once they have started.
	SetTotals(Totals)
	// Done draws the final state and ends the line.
	Done()
}

// Totals are what the operation will have done when complete; zero when
// unknown. The percentage and ETA follow bytes when their total is known,
// else pages; with neither, none is shown.
type Totals struct {
	Bytes int64
	Pages int64
}

// ForFile returns a bar drawing on f when f is a terminal and quiet is
// false (pass the -json flag as quiet); otherwise a Reporter that does
// nothing.
func ForFile(f *os.File, label string, totals Totals, quiet bool) Reporter {
	if quiet || f == nil || !IsTerminal(f) {
		return nop{}
	}
	return NewBar(f, label, totals, func() int { return terminalWidth(f) })
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalWidth returns f's width in columns, 80 if unknown.
func terminalWidth(f *os.File) int {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

type nop struct{}

func (nop) Update(int64, int64) {}
func (nop) SetTotals(Totals)    {}
func (nop) Done()               {}

// redrawEvery limits how often the bar is redrawn.
const redrawEvery = 100 * time.Millisecond

// Bar draws progress on one terminal line, redrawn in place.
type Bar struct {
	w      io.Writer
	label  string
	totals Totals
	width  func() int
	now    func() time.Time // tests replace the clock

	mu       sync.Mutex
	start    time.Time
	lastDraw time.Time
	bytes    int64
	pages    int64
	hasPages bool // pages were reported: show them even while zero
	done     bool
}

// NewBar returns a bar drawing on w, which must be a terminal; width
// returns its current width in columns.
func NewBar(w io.Writer, label string, totals Totals, width func() int) *Bar {
	return &Bar{w: w, label: label, totals: totals, width: width, now: time.Now}
}

// Update records progress and redraws if the last draw is old enough.
func (b *Bar) Update(bytes, pages int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	now := b.now()
	if b.start.IsZero() {
		b.start = now
	}
	b.bytes, b.pages = bytes, pages
	b.hasPages = b.hasPages || pages > 0
	if now.Sub(b.lastDraw) >= redrawEvery {
		b.draw(now)
	}
}

// SetTotals changes the totals; the next redraw uses them.
func (b *Bar) SetTotals(t Totals) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.totals = t
	b.hasPages = b.hasPages || t.Pages > 0
}

// redraw draws the current state at once, e.g. after a log line
// overwrote the bar.
func (b *Bar) redraw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done && !b.start.IsZero() {
		b.draw(b.now())
	}
}

// Done draws the final state and moves to the next line.
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	now := b.now()
	if b.start.IsZero() {
		b.start = now
	}
	b.done = true // the final line has no ETA
	b.draw(now)
	fmt.Fprint(b.w, "\n")
}

// draw rewrites the line: carriage return, the text, erase to the end.
func (b *Bar) draw(now time.Time) {
	b.lastDraw = now
	fmt.Fprint(b.w, "\r"+b.line(now)+"\x1b[K")
}

// line renders the bar to fit the terminal width: the bar itself shrinks
// first, then the least important fields are dropped.
func (b *Bar) line(now time.Time) string {
	width := b.width() - 1 // never write the last column: some terminals wrap
	elapsed := now.Sub(b.start).Seconds()
	fields := []string{b.label}
	// Progress is measured in bytes, or in pages when only pages are
	// reported or only their total is known.
	byPages := b.totals.Bytes <= 0 && (b.totals.Pages > 0 || b.bytes == 0)
	done, total := b.bytes, b.totals.Bytes
	if byPages {
		done, total = b.pages, b.totals.Pages
	}
	frac := -1.0
	if total > 0 {
		frac = min(float64(done)/float64(total), 1)
		fields = append(fields, fmt.Sprintf("%3.0f%%", frac*100))
	}
	if b.totals.Bytes > 0 {
		fields = append(fields, Bytes(b.bytes)+" / "+Bytes(b.totals.Bytes))
	} else if b.bytes > 0 {
		fields = append(fields, Bytes(b.bytes))
	}
	// Operations that count bytes only (uploads) show no page count.
	if b.totals.Pages > 0 {
		fields = append(fields, fmt.Sprintf("%d/%d pages", b.pages, b.totals.Pages))
	} else if b.hasPages || byPages {
		fields = append(fields, fmt.Sprintf("%d pages", b.pages))
	}
	var rate float64 // of done, per second
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	switch {
	case b.done:
		fields = append(fields, "in "+Duration(now.Sub(b.start)))
	case frac >= 0 && rate > 0:
		fields = append(fields, "ETA "+Duration(time.Duration(float64(total-done)/rate*float64(time.Second))))
	}
	if byPages {
		fields = append(fields, fmt.Sprintf("%.0f pages/s", rate))
	} else {
		fields = append(fields, Bytes(int64(rate))+"/s")
	}
	// With a bar if one of at least 10 columns fits, dropping the least
	// important fields (the last) first; else text alone.
	if frac >= 0 {
		for k := len(fields); k >= 2; k-- {
			text := strings.Join(fields[1:k], "  ")
			if barWidth := width - len(fields[0]) - len(text) - 5; barWidth >= 10 {
				return fields[0] + " [" + bar(frac, min(barWidth, 40)) + "]  " + text
			}
		}
	}
	for k := len(fields); k >= 2; k-- {
		if text := strings.Join(fields[:k], "  "); len(text) <= width {
			return text
		}
	}
	return truncate(fields[0], width)
}

func bar(frac float64, width int) string {
	full := int(frac * float64(width))
	if full >= width {
		return strings.Repeat("=", width)
	}
	return strings.Repeat("=", full) + ">" + strings.Repeat(" ", width-full-1)
}

func truncate(s string, width int) string {
	if width <= 0 {
		return ""
	}
	if len(s) > width {
		return s[:width]
	}
	return s
}

// Bytes formats a byte count with binary units: 512 B, 12.3 MiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

// Duration formats an ETA as m:ss or h:mm:ss.
func Duration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s < 0 {
		s = 0
	}
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
