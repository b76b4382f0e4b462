package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sqlitebackup/litestream/config"
)

func TestLoggerTypesAndLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(config.LoggingConfig{Level: "trace", Type: "json"}, "", &buf, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Log(t.Context(), levelTrace, "deep detail")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["level"] != "TRACE" || rec["msg"] != "deep detail" {
		t.Fatalf("json trace record %q: %v", buf.String(), err)
	}

	buf.Reset()
	log, _ = newLogger(config.LoggingConfig{Type: "pretty"}, "warn", &buf, &buf)
	log.Info("hidden")
	log.Warn("shown", "db", "/x.db")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN") || !strings.Contains(out, "shown") || strings.Contains(out, "T") && strings.Contains(out, "time=20") {
		t.Fatalf("pretty output %q", out)
	}

	t.Setenv("LOG_LEVEL", "error")
	buf.Reset()
	log, _ = newLogger(config.LoggingConfig{Level: "debug", Stderr: true}, "", nil, &buf)
	log.Warn("below error")
	if buf.Len() != 0 {
		t.Fatalf("LOG_LEVEL did not override the config: %q", buf.String())
	}
	if _, err := newLogger(config.LoggingConfig{}, "loud", &buf, &buf); err == nil {
		t.Fatal("invalid -log-level accepted")
	}
}
