package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// The manual page, citadelfs(1), generated from the command registry,
// cliSpecs and the exit code table, so it cannot drift from the binary.
// `make man` writes it to docs/man/citadelfs.1 (not committed: it is
// generated).

func init() {
	register(&command{
		name:    "man",
		summary: "print the manual page citadelfs(1) as roff",
		usage:   "",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			writeManPage(env.stdout)
			return nil
		},
	})
}

// roff escapes text for a roff line: backslashes, and a leading . or '
// that would make the line a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func manFlags(w io.Writer, fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		name := `\fB\-\-` + roff(f.Name) + `\fR`
		if f.Shorthand != "" {
			name = `\fB\-` + roff(f.Shorthand) + `\fR, ` + name
		}
		if t := f.Value.Type(); t != "bool" {
			if strings.HasSuffix(t, "Array") || strings.HasSuffix(t, "Slice") {
				t = "value" // repeatable
			}
			name += ` \fI` + roff(strings.ToUpper(t)) + `\fR`
		}
		usage := f.Usage
		if f.Value.Type() != "bool" && f.DefValue != "" && f.DefValue != "[]" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, ".TP\n%s\n%s\n", name, roff(usage))
	})
}

func writeManPage(w io.Writer) {
	fmt.Fprintf(w, `.TH CITADELFS 1 "" "citadelfs %s" "User Commands"
.SH NAME
citadelfs \- deduplicated snapshots, a FUSE mount of every one, and a monitor, for AI servers
.SH SYNOPSIS
.B citadelfs
[\fIglobal flags\fR] \fICOMMAND\fR [\fIflags\fR] [\fIargs\fR]
.SH DESCRIPTION
citadelfs protects an AI server's model weights, configs and logs: deduplicated
snapshots into a content\-addressed repository, a read\-only FUSE mount of every
snapshot, and an embedded monitor. Global flags may come before or after the
command. A usage error is one line on standard error and exit status 2.
.SH GLOBAL FLAGS
`, roff(version))
	manFlags(w, globalFlagSet())
	fmt.Fprintln(w, ".SH COMMANDS")
	for _, n := range commandNames() {
		c := commands[n]
		fmt.Fprintf(w, ".SS \"%s %s\"\n%s\n", roff(n), strings.ReplaceAll(roff(c.usage), `"`, `\(dq`), roff(c.summary))
		own, _ := flagSets(c)
		if own.HasFlags() {
			fmt.Fprintln(w, ".PP\nFlags:")
			manFlags(w, own)
		}
		if ex := specOf(n).examples; len(ex) > 0 {
			fmt.Fprintln(w, ".PP\nExamples:")
			for _, e := range ex {
				fmt.Fprintf(w, ".TP\n\\fB%s\\fR\n%s\n", roff(e.cmd), roff(e.why))
			}
		}
	}
	fmt.Fprintln(w, ".SH EXIT STATUS")
	for _, e := range exitTable {
		fmt.Fprintf(w, ".TP\n.B %d\n%s\n", e.code, roff(e.meaning))
	}
	fmt.Fprint(w, `.SH ENVIRONMENT
.TP
.B CITADELFS_REPO
the repository when \-\-repo is not given (before the configuration file's backup_root)
.TP
.B NO_COLOR
no colours in status output
.TP
.B GOMEMLIMIT
the soft memory limit (default 128 MiB, the mount daemon its own)
.SH FILES
.TP
.I /etc/citadelfs/config.yaml
the configuration file (\-\-config)
.SH SEE ALSO
The README and docs/ of the source tree: docs/cli.md, docs/config.md, docs/mount.md, docs/monitor.md, docs/systemd.md.
`)
}
