package progress

import (
	"bytes"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// fakeClock advances only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestBar(w io.Writer, totals Totals, width int) (*Bar, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	b := NewBar(w, "restore", totals, func() int { return width })
	b.now = clock.now
	return b, clock
}

// lastLine returns the text of the last redraw.
func lastLine(out string) string {
	out = strings.TrimRight(out, "\n")
	parts := strings.Split(out, "\r")
	return strings.TrimSuffix(parts[len(parts)-1], "\x1b[K")
}

func TestProgressRender(t *testing.T) {
	var buf bytes.Buffer
	totals := Totals{Bytes: 100 << 20, Pages: 25600}
	b, clock := newTestBar(&buf, totals, 120)
	b.Update(0, 0)
	clock.advance(2 * time.Second)
	b.Update(40<<20, 10240) // 20 MiB/s, 60 MiB left: 3 s
	got := lastLine(buf.String())
	for _, want := range []string{"restore [", "]", " 40%", "40.0 MiB / 100.0 MiB", "10240/25600 pages", "20.0 MiB/s", "ETA 0:03"} {
		if !strings.Contains(got, want) {
			t.Fatalf("line %q lacks %q", got, want)
		}
	}
	if len(got) > 119 {
		t.Fatalf("line is %d columns on a 120-column terminal", len(got))
	}

	// Updates closer together than the redraw interval draw nothing.
	n := buf.Len()
	clock.advance(10 * time.Millisecond)
	b.Update(41<<20, 10300)
	if buf.Len() != n {
		t.Fatal("redrawn within the rate limit")
	}

	clock.advance(time.Second)
	b.Done()
	out := buf.String()
	if !strings.HasSuffix(out, "\n") {
		t.Fatal("Done did not end the line")
	}
	final := lastLine(out)
	if strings.Contains(final, "ETA") || !strings.Contains(final, "41.0 MiB") {
		t.Fatalf("final line %q", final)
	}
	b.Update(50<<20, 1) // after Done: ignored
	if buf.String() != out {
		t.Fatal("drew after Done")
	}
}

// TestProgressNarrowTerminal: fields are dropped, least important first,
// and nothing is ever wider than the terminal.
func TestProgressNarrowTerminal(t *testing.T) {
	for _, width := range []int{100, 60, 40, 25, 12, 5} {
		var buf bytes.Buffer
		b, clock := newTestBar(&buf, Totals{Bytes: 1 << 30, Pages: 262144}, width)
		b.Update(0, 0)
		clock.advance(time.Second)
		b.Update(300<<20, 76800)
		line := lastLine(buf.String())
		t.Logf("%3d: %s", width, line)
		if len(line) >= width {
			t.Errorf("width %d: line %q is %d columns", width, line, len(line))
		}
		if width >= 40 && !strings.Contains(line, "%") {
			t.Errorf("width %d: no percentage in %q", width, line)
		}
	}
}

func TestProgressUnknownTotals(t *testing.T) {
	var buf bytes.Buffer
	b, clock := newTestBar(&buf, Totals{}, 80)
	b.Update(0, 0)
	clock.advance(time.Second)
	b.Update(3<<20, 768)
	line := lastLine(buf.String())
	if strings.Contains(line, "%") || strings.Contains(line, "ETA") || !strings.Contains(line, "3.0 MiB") || !strings.Contains(line, "768 pages") {
		t.Fatalf("line %q", line)
	}
}

func TestProgressFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{0: "0:00", 59 * time.Second: "0:59", 61 * time.Second: "1:01", 3723 * time.Second: "1:02:03"} {
		if got := Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestProgressNotATerminal: a pipe or a file gets no bar.
func TestProgressNotATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if IsTerminal(w) {
		t.Fatal("a pipe is not a terminal")
	}
	rep := ForFile(w, "restore", Totals{Bytes: 10}, false)
	rep.Update(5, 1)
	rep.Done()
	w.Close()
	if b, _ := io.ReadAll(r); len(b) != 0 {
		t.Fatalf("wrote %q to a pipe", b)
	}
}

// TestProgressOnPseudoTerminal draws on a real pseudo-terminal: the bar
// appears, fits the window size set on it, and -json (quiet) silences it.
func TestProgressOnPseudoTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal available: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	if !IsTerminal(tty) || terminalWidth(tty) != 80 {
		t.Fatalf("pty: terminal %v, width %d", IsTerminal(tty), terminalWidth(tty))
	}
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once the tty side is closed
		read <- string(b)
	}()

	ForFile(tty, "quiet", Totals{Bytes: 100}, true).Done() // -json: nothing drawn
	rep := ForFile(tty, "restore", Totals{Bytes: 8 << 20, Pages: 2048}, false)
	bar, ok := rep.(*Bar)
	if !ok {
		t.Fatalf("ForFile on a terminal returned %T", rep)
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	bar.now = clock.now
	for i := int64(0); i <= 8; i++ {
		bar.Update(i<<20, i*256)
		clock.advance(time.Second)
	}
	bar.Done()
	tty.Close()
	var out string
	select {
	case out = <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("reading the pseudo-terminal timed out")
	}
	if strings.Contains(out, "quiet") {
		t.Fatalf("quiet reporter drew: %q", out)
	}
	lines := regexp.MustCompile(`\r\n|\r`).Split(out, -1)
	var drawn []string
	for _, l := range lines {
		if l = strings.TrimSuffix(l, "\x1b[K"); l != "" {
			drawn = append(drawn, l)
		}
	}
	if len(drawn) < 9 {
		t.Fatalf("want a redraw per update, got %d: %q", len(drawn), out)
	}
	final := drawn[len(drawn)-1]
	for _, want := range []string{"restore [", "100%", "8.0 MiB / 8.0 MiB", "2048/2048"} {
		if !strings.Contains(final, want) {
			t.Fatalf("final line %q lacks %q", final, want)
		}
	}
	for _, l := range drawn {
		if len(l) >= 80 {
			t.Fatalf("line %q wider than the 80-column terminal", l)
		}
	}
}
