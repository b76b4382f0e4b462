package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func newTestLines(w *bytes.Buffer, width int) (*Lines, *fakeClock) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := NewLines(w, func() int { return width })
	l.now = clock.now
	return l, clock
}

// drawnLines splits terminal output into the finished lines, each given
// as its last redraw.
func drawnLines(out string) []string {
	var lines []string
	for _, l := range strings.SplitAfter(out, "\n") {
		if l != "" {
			lines = append(lines, lastLine(l))
		}
	}
	return lines
}

// TestLinesOperations: each operation gets its own line, finished with
// its totals; byte-only operations (uploads) show no page count.
func TestLinesOperations(t *testing.T) {
	var buf bytes.Buffer
	l, clock := newTestLines(&buf, 120)
	image := Event{Label: "app.db full image", TotalBytes: 8 << 20, TotalPages: 2048}
	for i := int64(0); i <= 4; i++ {
		e := image
		e.Bytes, e.Pages = i*2<<20, i*512
		l.Report(e)
		clock.advance(time.Second)
	}
	image.Bytes, image.Pages, image.Finished = 8<<20, 2048, true
	l.Report(image)

	upload := Event{Label: "app.db upload", TotalBytes: 4 << 20}
	l.Report(upload)
	clock.advance(time.Second)
	upload.Bytes = 1 << 20
	l.Report(upload)
	mid := lastLine(buf.String())
	clock.advance(3 * time.Second)
	upload.Bytes, upload.Finished = 4<<20, true
	l.Report(upload)
	l.Report(Event{Label: "after the end"}) // starts a line Close ends
	l.Close()

	lines := drawnLines(buf.String())
	if len(lines) != 3 {
		t.Fatalf("want 3 lines, got %d: %q", len(lines), buf.String())
	}
	for _, want := range []string{"app.db full image [", "100%", "8.0 MiB / 8.0 MiB", "2048/2048 pages", "1.6 MiB/s", "in 0:05"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("image line %q lacks %q", lines[0], want)
		}
	}
	for _, want := range []string{"app.db upload [", " 25%", "1.0 MiB / 4.0 MiB", "1.0 MiB/s", "ETA 0:03"} {
		if !strings.Contains(mid, want) {
			t.Errorf("upload line %q lacks %q", mid, want)
		}
	}
	if !strings.Contains(lines[1], "100%") || strings.Contains(lines[1], "pages") {
		t.Errorf("upload line %q", lines[1])
	}
}

// TestLinesRestoreEvents: a restore reports bytes read (total known from
// the start) and pages written (total learnt later); the percentage
// follows bytes.
func TestLinesRestoreEvents(t *testing.T) {
	var buf bytes.Buffer
	l, clock := newTestLines(&buf, 120)
	l.Report(Event{Label: "restore", TotalBytes: 10 << 20})
	if line := lastLine(buf.String()); !strings.Contains(line, "  0%") || !strings.Contains(line, "0 B / 10.0 MiB") {
		t.Fatalf("first line %q", line)
	}
	clock.advance(2 * time.Second)
	l.Report(Event{Label: "restore", Bytes: 4 << 20, TotalBytes: 10 << 20, Pages: 3000, TotalPages: 6000})
	line := lastLine(buf.String())
	for _, want := range []string{" 40%", "4.0 MiB / 10.0 MiB", "3000/6000 pages", "2.0 MiB/s", "ETA 0:03"} {
		if !strings.Contains(line, want) {
			t.Fatalf("line %q lacks %q", line, want)
		}
	}
}

// TestLinesLogPassThrough: a log line written while a bar is drawn erases
// the bar, appears on its own line, and the bar is drawn again below it.
func TestLinesLogPassThrough(t *testing.T) {
	var buf bytes.Buffer
	l, _ := newTestLines(&buf, 80)
	if _, err := l.Write([]byte("before\n")); err != nil || buf.String() != "before\n" {
		t.Fatalf("write with no bar: %q %v", buf.String(), err)
	}
	l.Report(Event{Label: "upload", TotalBytes: 100})
	buf.Reset()
	if _, err := l.Write([]byte("level=INFO msg=hello\n")); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "\r\x1b[Klevel=INFO msg=hello\n\rupload [") {
		t.Fatalf("log line over a bar: %q", out)
	}
}

func TestLinesNil(t *testing.T) {
	var l *Lines = LinesForFile(nil, false)
	if l != nil {
		t.Fatal("no file, yet Lines")
	}
	l.Report(Event{Label: "x", Bytes: 1})
	l.Close()
}
