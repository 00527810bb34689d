// Command citadelfs protects an AI server's model weights, configs and logs:
// deduplicated snapshots into a content-addressed store, a read-only FUSE
// mount of every snapshot, and an embedded monitor. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/term"
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
	// staleOK delegable commands accept the daemon's cache as a sync that
	// finished within clientSyncAge left it (status --watch asks every
	// second); the others see the store as it is when they start, as
	// they would run on their own.
	staleOK bool
	// readsOnly commands open a repository they cannot write (read-only
	// media, a full disk) read-only instead of failing: see openRepo.
	readsOnly bool
	// delegateArgs, if set, rewrites a delegable command's arguments
	// before they go to the daemon, which sees none of this process's
	// environment (copy passes $CITADELFS_TO_PASSWORD_FILE as a flag).
	delegateArgs func(env *cmdEnv, args []string) []string
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
	// columns is the width of that terminal when the command started (0:
	// unknown); a local command asks again for every progress frame.
	columns int
	// daemon is non-nil when the command runs inside the mount daemon on
	// behalf of a client; the repository is then already open.
	daemon *daemonState
	cfg    *config
	// cwd is the caller's working directory when run by the daemon for a client.
	cwd string
	// keySlot is the key slot that unlocked the repository, secret what
	// opened it (unlock.go): asked once, also by a command that opens the
	// repository again (status --watch).
	keySlot string
	secret  *secretSource
}

type globalFlags struct {
	repo       string
	configPath string
	json       bool
	quiet      bool
	// insecureRepo opens a repository other users can write.
	insecureRepo bool
	// logLevel and logFormat are --log-level and --log-format (logging.go).
	logLevel, logFormat string
	// For an s3:// repository (remote.go).
	cacheDir string
	s3       s3Config
	// blobCacheSize is --blob-cache-size ("" for the config's, then the
	// default).
	blobCacheSize string
	// For an encrypted repository (unlock.go).
	passwordFile, keyFile string
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
// Global flags may come before the command (citadelfs --repo R snapshots)
// or after it; a usage error goes to stderr with exit 2.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	pre, rest, code, ok := splitGlobals(args, stdout, stderr)
	if !ok {
		return code
	}
	c, ok := commands[rest[0]]
	if !ok {
		fmt.Fprintf(stderr, "citadelfs: unknown command %q (see 'citadelfs help')\n", rest[0])
		return exitUsage
	}
	// The command's own parser sees the global flags again, so that they
	// mean the same before and after the command, and a command that takes
	// no --json rejects a --json given before it.
	cmdArgs := append(pre, rest[1:]...)
	env := &cmdEnv{stdout: stdout, stderr: stderr, global: &globalFlags{}}
	if code, ok := parseFlags(c, env, cmdArgs); !ok {
		return code
	}
	env.isTerminal = isTerminal(os.Stderr)
	if f, ok := stderr.(*os.File); ok && f == os.Stderr {
		// Packages that log through slog's default (fs, monitor) follow
		// --log-level and --log-format too.
		slog.SetDefault(env.logger())
	}
	if env.isTerminal {
		env.columns = termColumns(os.Stderr)
	}
	if theStopper != nil {
		theStopper.setCommand(c.name, commandGrace(c.name))
	}
	if c.delegable && !runsHere(c, env) {
		dargs := append([]string{c.name}, cmdArgs...)
		if c.delegateArgs != nil {
			dargs = c.delegateArgs(env, dargs)
		}
		if code, handled := delegateToDaemon(ctx, env, c, dargs); handled {
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

// splitGlobals parses the global flags before the command. pre is them again
// as --name=value arguments, for the command's parser; rest starts with the
// command's name. ok=false means it printed help, the version or an error,
// and code is the exit code.
func splitGlobals(args []string, stdout, stderr io.Writer) (pre, rest []string, code int, ok bool) {
	g := &globalFlags{}
	fs := pflag.NewFlagSet("citadelfs", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SetInterspersed(false) // the first word that is no flag is the command
	defineGlobalFlags(fs, g, true)
	help := fs.BoolP("help", "h", false, "")
	ver := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "citadelfs: %v (see 'citadelfs help')\n", err)
		return nil, nil, exitUsage, false
	}
	rest = fs.Args()
	fs.Visit(func(f *pflag.Flag) {
		if f.Name != "help" && f.Name != "version" {
			pre = append(pre, "--"+f.Name+"="+f.Value.String())
		}
	})
	switch {
	case *help && len(rest) == 0:
		printUsage(stdout)
		return nil, nil, exitOK, false
	case *help:
		rest = append(rest[:1:1], append([]string{"--help"}, rest[1:]...)...)
	case *ver && len(rest) == 0:
		rest = []string{"version"}
	case len(rest) == 0:
		printUsage(stderr)
		return nil, nil, exitUsage, false
	}
	return pre, rest, 0, true
}

// defineGlobalFlags declares the flags every command takes; --json only
// where the command prints JSON (see cliSpecs).
func defineGlobalFlags(fs *pflag.FlagSet, g *globalFlags, json bool) {
	fs.StringVar(&g.repo, "repo", "", "repository directory (default $CITADELFS_REPO, then the config file's backup_root)")
	fs.StringVar(&g.configPath, "config", defaultConfigPath, "configuration file")
	if json {
		fs.BoolVar(&g.json, "json", false, "print one machine-readable JSON document")
	}
	fs.BoolVarP(&g.quiet, "quiet", "q", false, "no progress output")
	fs.BoolVar(&g.insecureRepo, "insecure-repo-permissions", false, "open a repository that users other than this one and root can write (unsafe as root)")
	addRemoteFlags(fs, g)
	addKeyFlags(fs, g)
	defineLogFlags(fs, g)
}

func newFlagSet(c *command, g *globalFlags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("citadelfs "+c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	defineGlobalFlags(fs, g, specOf(c.name).json)
	if c.flags != nil {
		c.flags(fs)
	}
	fs.Usage = func() {}
	return fs
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "citadelfs — deduplicated snapshots, a FUSE mount of every one, and a monitor, for AI servers")
	fmt.Fprintln(w, "\nUsage: citadelfs [global flags] COMMAND [flags] [args]\n\nCommands:")
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nGlobal flags (before or after the command): --repo DIR, --config FILE, --json, --quiet, --log-level L, --log-format text|json")
	fmt.Fprintln(w, "Exit codes:")
	for _, e := range exitTable {
		fmt.Fprintf(w, "  %-3d %s\n", e.code, e.meaning)
	}
	fmt.Fprintln(w, "\nRun 'citadelfs help COMMAND' for a command's flags and examples.")
}

// commandNames is every registered command, sorted.
func commandNames() []string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func init() {
	register(&command{name: "help", summary: "show the commands, or one command's flags and examples", usage: "[COMMAND]",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			if len(args) == 0 {
				printUsage(env.stdout)
				return nil
			}
			c, ok := commands[args[0]]
			if !ok {
				return usagef("unknown command %q (see 'citadelfs help')", args[0])
			}
			printCommandHelp(env.stdout, c)
			return nil
		}})
}

// usageError marks a mistake in how the command was called.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// isTerminal says whether f is a terminal (isatty, through x/term): a
// character device is not enough, /dev/null is one too, and progress
// escapes written there by a unit with StandardError=null or a cron job
// redirecting 2>/dev/null were drawn for nobody.
func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd())) && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}

// termColumns is f's terminal width, 0 when it cannot be read.
func termColumns(f *os.File) int {
	w, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return w
}

// printCommandHelp is `citadelfs help CMD` and `CMD --help`: the synopsis,
// examples, the command's own flags, then the global ones.
func printCommandHelp(w io.Writer, c *command) {
	spec := specOf(c.name)
	fmt.Fprintf(w, "Usage: citadelfs %s %s\n\n%s\n", c.name, c.usage, c.summary)
	if len(spec.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, e := range spec.examples {
			fmt.Fprintf(w, "  %s\n      %s\n", e.cmd, e.why)
		}
	}
	own, global := flagSets(c)
	if own.HasFlags() {
		fmt.Fprintf(w, "\nFlags:\n%s", own.FlagUsages())
	}
	fmt.Fprintf(w, "\nGlobal flags:\n%s", global.FlagUsages())
}

// flagSets returns c's own flags and the global flags it takes, apart, for
// help, completion and the man page.
func flagSets(c *command) (own, global *pflag.FlagSet) {
	own = pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	if c.flags != nil {
		c.flags(own)
	}
	global = pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	defineGlobalFlags(global, &globalFlags{}, specOf(c.name).json)
	return own, global
}

// parseFlags parses a command's flags into env.flags and env.global. When
// it returns ok=false it has printed help or the error and code is the exit
// code. More positional arguments than the command takes is a usage error
// here, before the command runs (in the daemon too).
func parseFlags(c *command, env *cmdEnv, args []string) (code int, ok bool) {
	fs := newFlagSet(c, env.global)
	spec := specOf(c.name)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			printCommandHelp(env.stdout, c)
			return exitOK, false
		}
		if !spec.json && strings.Contains(err.Error(), "--json") {
			err = fmt.Errorf("%s has no --json output", c.name)
		}
		fmt.Fprintf(env.stderr, "citadelfs %s: %v (see 'citadelfs help %s')\n", c.name, err, c.name)
		return exitUsage, false
	}
	if err := checkLogFlags(env.global); err != nil {
		fmt.Fprintf(env.stderr, "citadelfs %s: %v\n", c.name, err)
		return exitUsage, false
	}
	if n := fs.NArg(); spec.maxArgs >= 0 && n > spec.maxArgs {
		if spec.maxArgs == 0 {
			fmt.Fprintf(env.stderr, "citadelfs %s: unexpected argument %q: %s takes none (see 'citadelfs help %s')\n", c.name, fs.Arg(0), c.name, c.name)
		} else {
			fmt.Fprintf(env.stderr, "citadelfs %s: %d arguments, at most %d expected: %s %s\n", c.name, n, spec.maxArgs, c.name, c.usage)
		}
		return exitUsage, false
	}
	env.cmd, env.flags = c, fs
	return 0, true
}
