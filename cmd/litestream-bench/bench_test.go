package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream/ltxfile"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 holds spaces and a ')' to check parsing from the last ')'.
	stat := "4242 (lite stream) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 0 0"
	got, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 * time.Second; got != want { // (250+50) ticks at 100 Hz
		t.Fatalf("cpu %s, want %s", got, want)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("no error for a malformed stat line")
	}
}

func TestParseStatusMem(t *testing.T) {
	m := parseStatusMem([]byte("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\n"))
	if m.HWM != 2048<<10 || m.RSS != 1024<<10 {
		t.Fatalf("got %+v", m)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1.2GB": 1_200_000_000, "10MB": 10_000_000, "512": 512, "4kb": 4000} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseSize("lots"); err == nil {
		t.Error("no error for an invalid size")
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if p := percentile(xs, 50); p != 5 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(xs, 95); p != 10 {
		t.Errorf("p95 = %v", p)
	}
}

// TestFindMarkers checks a marker is found in the decoded pages of an LTX
// file, and an absent one is not.
func TestFindMarkers(t *testing.T) {
	present, absent := newMarker(), newMarker()
	var file bytes.Buffer
	hdr := ltxfile.Header(4096, 2, 1, 1, time.Now())
	_, err := ltxfile.Encode(&file, hdr, []uint32{1, 2}, func(pgno uint32, buf []byte) error {
		clear(buf)
		if pgno == 2 {
			copy(buf[1000:], present)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waits := []*markerWait{{marker: present}, {marker: absent}}
	found, err := findMarkers(&file, waits, make([]byte, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0] != waits[0] {
		t.Fatalf("found %d markers, want only the present one", len(found))
	}
}
