package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/config"
)

// yamlKeys returns the YAML key of every field of t, recursing into
// inline and nested structs.
func yamlKeys(t reflect.Type, keys map[string]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")
		if tag[0] != "" {
			keys[tag[0]] = true
		}
		if ft := f.Type; ft.PkgPath() == "" || strings.HasSuffix(ft.PkgPath(), "/config") || ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			if ft.String() != "*config.Duration" && ft.String() != "config.Duration" && ft.String() != "*config.Size" {
				yamlKeys(ft, keys)
			}
		}
	}
}

// TestSampleConfigDocumentsEveryKey: etc/litestream.yml parses, and every
// key the config accepts appears in it (most commented out).
func TestSampleConfigDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "etc", "litestream.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(b, false); err != nil {
		t.Fatalf("etc/litestream.yml: %v", err)
	}
	keys := map[string]bool{}
	yamlKeys(reflect.TypeOf(config.Config{}), keys)
	if len(keys) < 60 {
		t.Fatalf("found only %d config keys by reflection", len(keys))
	}
	for key := range keys {
		if !regexp.MustCompile(`(?m)^[#\s-]*` + regexp.QuoteMeta(key) + `:`).Match(b) {
			t.Errorf("etc/litestream.yml does not mention %q", key)
		}
	}
}

// TestSystemdUnit checks the unit's hardening and that it leaves the
// final sync time to finish; systemd-analyze verifies it when present.
func TestSystemdUnit(t *testing.T) {
	p := filepath.Join("..", "..", "etc", "litestream.service")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"User=litestream", "ProtectSystem=strict", "ReadWritePaths=", "NoNewPrivileges=true",
		"ProtectHome=true", "PrivateTmp=true", "CapabilityBoundingSet=\n", "RuntimeDirectory=litestream",
		"ExecStart=/usr/bin/litestream replicate", "KillSignal=SIGTERM"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("unit lacks TimeoutStopSec")
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d <= litestream.DefaultShutdownSyncTimeout {
		t.Errorf("TimeoutStopSec=%s must exceed the default shutdown-sync-timeout %s", m[1], litestream.DefaultShutdownSyncTimeout)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: unit syntax not verified")
		return
	}
	out, _ := exec.Command(analyze, "verify", p).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// The binary is not installed on a test machine; anything else is a problem.
		if line != "" && !strings.Contains(line, "is not executable") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}
