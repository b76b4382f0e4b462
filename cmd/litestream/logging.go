package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/sqlitebackup/litestream/progress"
)

// levelTrace is upstream's TRACE level, below DEBUG.
const levelTrace = slog.LevelDebug - 4

// levelNames prints TRACE instead of slog's "DEBUG-4".
func levelName(l slog.Level) string {
	if l <= levelTrace {
		return "TRACE"
	}
	return l.String()
}

// replaceLevel renames the trace level in every handler.
func replaceLevel(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(levelName(l))
		}
	}
	return a
}

// isTerminalWriter reports whether w writes to a terminal: a terminal
// file, or the progress bars, which exist only on one.
func isTerminalWriter(w io.Writer) bool {
	switch w := w.(type) {
	case *os.File:
		return progress.IsTerminal(w)
	case *progress.Lines:
		return w != nil
	}
	return false
}

// prettyOptions adapts text handler options for humans at a terminal:
// time of day only, and the level in colour when w is a terminal.
func prettyOptions(opts *slog.HandlerOptions, w io.Writer) *slog.HandlerOptions {
	o := *opts
	color := isTerminalWriter(w)
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		switch {
		case len(groups) == 0 && a.Key == slog.TimeKey:
			return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
		case len(groups) == 0 && a.Key == slog.LevelKey:
			l, _ := a.Value.Any().(slog.Level)
			name := levelName(l)
			if color {
				name = levelColor(l) + name + "\x1b[0m"
			}
			return slog.String(slog.LevelKey, name)
		}
		return a
	}
	return &o
}

func levelColor(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "\x1b[31m"
	case l >= slog.LevelWarn:
		return "\x1b[33m"
	case l >= slog.LevelInfo:
		return "\x1b[32m"
	}
	return "\x1b[90m"
}
