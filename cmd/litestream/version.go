package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// VersionCommand prints the version.
type VersionCommand struct {
	stdout io.Writer
}

// Run executes the command.
func (c *VersionCommand) Run(args []string) error {
	fs := flag.NewFlagSet("litestream-version", flag.ContinueOnError)
	verbose := fs.Bool("verbose", false, "print build details")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, versionString())
	if *verbose {
		fmt.Fprintf(c.stdout, "Go Version: %s\nOS/Arch: %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		if rev, dirty := vcsRevision(); rev != "" {
			if dirty {
				rev += " (dirty)"
			}
			fmt.Fprintf(c.stdout, "Git Commit: %s\n", rev)
		}
	}
	return nil
}

func versionString() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	if rev, dirty := vcsRevision(); rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		return "(development build " + rev + ")"
	}
	return "(development build)"
}

func vcsRevision() (rev string, dirty bool) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	return rev, dirty
}
