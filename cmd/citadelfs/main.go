// Command citadelfs protects an AI server's model weights, configs and logs:
// deduplicated snapshots into a content-addressed store, a read-only FUSE
// mount of every snapshot, and an embedded monitor. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// command is one subcommand. Each lives in its own cmd_<name>.go file and
// registers itself from init, so adding a command touches no shared table.
type command struct {
	name    string
	summary string
	usage   string // argument synopsis after the command name
	// flags declares the command's own flags on fs.
	flags func(fs *pflag.FlagSet)
	// run does the work. args are the positional arguments.
	run func(ctx context.Context, env *cmdEnv, args []string) error
	// delegable commands are handed to a running mount daemon over its
	// control socket when one owns the repository.
	delegable bool
	// readsOnly commands open a repository they cannot write (read-only
	// media, a full disk) read-only instead of failing: see openRepo.
	readsOnly bool
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

// cmdEnv is what every command gets: where to write, the global options,
// and the parsed flag set.
type cmdEnv struct {
	stdout, stderr io.Writer
	global         *globalFlags
	// cmd is the command being run, set with flags by parseFlags: what
	// openRepo names the lock holder and whether it only reads.
	cmd   *command
	flags *pflag.FlagSet
	// isTerminal says whether stderr is a terminal (progress is drawn only then).
	isTerminal bool
	// daemon is non-nil when the command runs inside the mount daemon on
	// behalf of a client; the repository is then already open.
	daemon *daemonState
	cfg    *config
	// cwd is the caller's working directory when run by the daemon for a client.
	cwd string
}

type globalFlags struct {
	repo       string
	configPath string
	json       bool
	quiet      bool
	// insecureRepo opens a repository other users can write.
	insecureRepo bool
	// For an s3:// repository (remote.go).
	cacheDir string
	s3       s3Config
}

func main() {
	theStopper = newStopper(os.Stderr, os.Exit)
	ctx := theStopper.ctx
	// CITADELFS_CPUPROFILE=file writes a CPU profile, for the bench and for
	// chasing a slow snapshot on a real server.
	if p := os.Getenv("CITADELFS_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	// A soft heap target: the machines this runs on give their memory to
	// model weights, and a snapshot's garbage (compressed chunks, pack
	// buffers) should be collected before it grows the process. The mount
	// daemon sets its own; GOMEMLIMIT overrides both.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(128 << 20)
	}
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	// CITADELFS_MEMPROFILE=file writes the live heap at exit (a daemon's
	// after SIGTERM), for chasing what a long-running mount holds on to.
	if p := os.Getenv("CITADELFS_MEMPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
	}
	os.Exit(code)
}

// runMain parses args and runs one command, returning the process exit code.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || (args[0] == "help" && len(args) == 1) {
		printUsage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Fprintln(stdout, "citadelfs", version)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "citadelfs: unknown command %q (see 'citadelfs help')\n", args[0])
		return exitUsage
	}
	env := &cmdEnv{stdout: stdout, stderr: stderr, global: &globalFlags{}}
	if code, ok := parseFlags(c, env, args[1:]); !ok {
		return code
	}
	env.isTerminal = isTerminal(os.Stderr)
	if theStopper != nil {
		theStopper.setCommand(c.name, commandGrace(c.name))
	}
	if c.delegable {
		if code, handled := delegateToDaemon(ctx, env, c, args); handled {
			return code
		}
	}
	err := c.run(ctx, env, env.flags.Args())
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) && exitCode(err) == exitFatal {
		// Stopped by SIGINT/SIGTERM (signals.go) where the command has
		// no message of its own: every loop stops between steps that
		// commit whole, so nothing is half done.
		err = withExit(exitInterrupted, errors.New("interrupted; nothing partial was committed"))
	}
	return reportError(stderr, c.name, err)
}

func newFlagSet(c *command, g *globalFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("citadelfs "+c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.repo, "repo", "", "repository directory (default $CITADELFS_REPO, then the config file's backup_root)")
	fs.StringVar(&g.configPath, "config", defaultConfigPath, "configuration file")
	fs.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	fs.BoolVar(&g.insecureRepo, "insecure-repo-permissions", false, "open a repository that users other than this one and root can write (unsafe as root)")
	addRemoteFlags(fs, g)
	if c.flags != nil {
		c.flags(fs)
	}
	fs.Usage = func() {}
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "citadelfs — deduplicated snapshots, a FUSE mount of every one, and a monitor, for AI servers")
	fmt.Fprintln(w, "\nUsage: citadelfs COMMAND [flags] [args]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  %-10s %s\n", n, c.summary)
	}
	fmt.Fprintln(w, "\nGlobal flags: --repo DIR, --config FILE, --json, --quiet")
	fmt.Fprintln(w, "Exit codes:")
	for _, e := range exitTable {
		fmt.Fprintf(w, "  %-3d %s\n", e.code, e.meaning)
	}
	fmt.Fprintln(w, "\nRun 'citadelfs COMMAND --help' for a command's flags.")
}

func init() {
	register(&command{name: "help", summary: "show this help", run: func(ctx context.Context, env *cmdEnv, args []string) error {
		if len(args) == 1 {
			if c, ok := commands[args[0]]; ok {
				printCommandHelp(env.stdout, c)
				return nil
			}
		}
		printUsage(env.stdout)
		return nil
	}})
}

// usageError marks a mistake in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}

const version = "0.1.0"

func printCommandHelp(w io.Writer, c *command) {
	fs := newFlagSet(c, &globalFlags{})
	fmt.Fprintf(w, "Usage: citadelfs %s %s\n\n%s\n\nFlags:\n%s", c.name, c.usage, c.summary, fs.FlagUsages())
}

// parseFlags parses a command's flags into env.flags and env.global. When
// it returns ok=false it has printed help or the error and code is the exit
// code.
func parseFlags(c *command, env *cmdEnv, args []string) (code int, ok bool) {
	fs := newFlagSet(c, env.global)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			printCommandHelp(env.stdout, c)
			return exitOK, false
		}
		fmt.Fprintf(env.stderr, "citadelfs %s: %v\n", c.name, err)
		return exitUsage, false
	}
	env.cmd, env.flags = c, fs
	return 0, true
}
