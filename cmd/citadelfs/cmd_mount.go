package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	cfs "citadelfs/fs"
	"citadelfs/internal/fsadapter"
)

func init() {
	register(&command{
		name:    "mount",
		summary: "serve every snapshot read-only at MOUNTPOINT and own the repository (the daemon)",
		usage:   "[--allow-other] [--metrics-listen ADDR] [--host NAME] [--sync-interval DURATION] [MOUNTPOINT]",
		flags: func(fs *pflag.FlagSet) {
			fs.String("host", "", "this host's name: <date>/ and latest/ show its snapshots, hosts/<host>/ every host's (default the hostname)")
			fs.Bool("allow-other", false, "let users other than root use the mount (file modes still apply)")
			fs.String("metrics-listen", "", "serve Prometheus /metrics on ADDR (e.g. 127.0.0.1:9473)")
			fs.Bool("fuse-debug", false, "log every FUSE request (very verbose)")
			fs.Duration("sync-interval", time.Minute, "for a repository in a store: how often to bring the cache up to date with it (other hosts' snapshots, forgets, prunes)")
		},
		run: runMount,
	})
}

const (
	// readyTimeout bounds the wait for the kernel to answer the new mount.
	readyTimeout = 30 * time.Second
	// daemonMemoryLimit is the daemon's soft Go memory limit.
	daemonMemoryLimit = 200 << 20
	// shutdownGrace is how long commands running for clients get to stop
	// at SIGTERM (systemd's default stop timeout is 90s).
	shutdownGrace = 30 * time.Second
)

func runMount(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) > 1 {
		return usagef("mount takes one MOUNTPOINT")
	}
	allowOther, _ := env.flags.GetBool("allow-other")
	listen, _ := env.flags.GetString("metrics-listen")
	fuseDebug, _ := env.flags.GetBool("fuse-debug")
	host, _ := env.flags.GetString("host")
	if host != "" && !validHost(host) {
		return usagef("--host %q: want 1 to 64 letters, digits, '.', '-' or '_'", host)
	}
	if host == "" {
		// What a snapshot records by default (snapshot.Request.Host).
		host, _ = os.Hostname()
	}
	cfg, err := env.config()
	if err != nil {
		return err
	}
	mp := cfg.Mountpoint
	if len(args) == 1 {
		mp = args[0]
	}
	mp, err = filepath.Abs(mp)
	if err != nil {
		return err
	}
	repoDir, err := env.repoPath()
	if err != nil {
		return err
	}
	remote := isRemote(repoDir)
	if !remote {
		if repoDir, err = filepath.Abs(repoDir); err != nil {
			return err
		}
		if err := checkMountpoint(mp, repoDir); err != nil {
			return err
		}
	}
	if err := checkListen(listen); err != nil {
		return err
	}
	syncEvery, _ := env.flags.GetDuration("sync-interval")
	if syncEvery <= 0 {
		return usagef("--sync-interval %s: want a positive duration, e.g. 1m", syncEvery)
	}
	log := env.logger()
	// The daemon runs for months next to model servers that want the
	// memory: keep the Go heap's garbage collected well before the
	// chunk cache and buffer pool (about 100 MiB live) double it.
	// GOMEMLIMIT in the environment overrides this.
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}

	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	// Where the control socket lives: a local repository's directory, or
	// the cache of one in a store, which the daemon writes as it would
	// the repository (docs/mount.md "A repository in a store").
	ownerDir := repoDir
	if remote {
		ownerDir = repo.Index().CacheDir
	}
	if repo.Index().IsRemote() {
		if err := checkMountpoint(mp, repo.Index().CacheDir); err != nil {
			return err
		}
	}
	st := &daemonState{repo: repo}
	// From here on, commands this process runs (the monitor's backup
	// source) use the open repository, as delegated commands do.
	env.daemon = st

	if err := clearStaleMount(mp, log); err != nil {
		return err
	}
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return fmt.Errorf("mount: %w", err)
	}

	// Reads that find corrupt data answer EIO to the reader; the record
	// lets the monitor raise backup_corrupt about them. Set before the
	// monitor is built so its backup source finds it.
	integrity := fsadapter.NewCorruptReadRecord(time.Now, repo)
	st.integrity = integrity

	status := []cfs.StatusSource{fsadapter.NewStatus(repo)}
	cm, err := newCLIMonitor(ctx, env, cliMonitorMode{writeHistory: true, logTransitions: true, kv: repo.Index().KV})
	var ue usageError
	switch {
	case errors.As(err, &ue):
		return err
	case err != nil:
		// The snapshots matter more than the monitor: serve them anyway.
		log.Warn("mount: monitor not running", "err", err)
	default:
		defer cm.close()
		for _, w := range cm.warnings {
			log.Warn("mount: " + w)
		}
		st.monitor = cm.m
		status = append(status, cm.m)
	}

	srv, err := cfs.Mount(mp, cfs.Options{
		Tree:       fsadapter.NewTree(repo),
		Host:       host,
		Status:     cfs.MergeStatus(status...),
		Logger:     log,
		OnError:    integrity.OnError,
		AllowOther: allowOther,
		Debug:      fuseDebug,
	})
	if err != nil {
		return err
	}
	served := make(chan struct{})
	go func() { srv.Wait(); close(served) }()
	// Whatever happens from here, the mountpoint must not be left dead,
	// not even when the stop outlives its grace (signals.go).
	defer onHardExit(func() { unix.Unmount(mp, unix.MNT_DETACH) })()
	unmounted := false
	defer func() {
		if !unmounted {
			unmountServer(srv, mp, served, log)
		}
	}()

	if err := waitReady(ctx, mp, served); err != nil {
		return err
	}

	st.refresh = srv.Refresh
	daemon, err := startDaemonServer(ownerDir, st, log)
	if err != nil {
		return err
	}
	defer daemon.Close(shutdownGrace)
	if repo.Index().IsRemote() {
		st.sync = newCacheSync(repo, srv.Refresh, log)
		defer st.sync.start(syncEvery)()
	}

	monCtx, stopMon := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	if st.monitor != nil {
		go func() {
			defer close(monDone)
			if err := st.monitor.Run(monCtx); err != nil && monCtx.Err() == nil {
				log.Error("mount: monitor stopped", "err", err)
			}
		}()
	} else {
		close(monDone)
	}
	defer func() { stopMon(); <-monDone }()

	if listen != "" && st.monitor != nil {
		_, stop, err := serveMetrics("mount", listen, st.monitor.Handler())
		if err != nil {
			return err
		}
		defer stop()
	}

	fmt.Fprintf(env.stdout, "citadelfs: mounted %s at %s\n", repoDir, mp)
	sdNotify("READY=1\nSTATUS=serving " + repoDir + " at " + mp)
	stopWatchdog := startWatchdog(mp, log)

	select {
	case <-ctx.Done():
		log.Info("mount: stopping", "signal", "SIGTERM/SIGINT")
	case <-served:
		log.Warn("mount: unmounted from outside; stopping")
	}
	// No pings once stopping: systemd's stop timeout governs from here.
	stopWatchdog()
	sdNotify("STOPPING=1")
	// Stop taking commands first: a snapshot finishing now must commit
	// before the repository closes (deferred above, in reverse order).
	daemon.Close(shutdownGrace)
	unmounted = true
	if err := unmountServer(srv, mp, served, log); err != nil {
		return err
	}
	return nil
}

// checkMountpoint refuses a mountpoint inside the repository, or one that
// would hide it: the daemon writes pack files there while serving.
func checkMountpoint(mp, repo string) error {
	rmp, rrepo := realPath(mp), realPath(repo)
	if within(rmp, rrepo) || within(rrepo, rmp) {
		return usagef("mountpoint %s and repository %s overlap; mount outside the repository", mp, repo)
	}
	// A stale FUSE mount answers ENOTCONN here and is cleared later; a
	// file is a mistake in the argument.
	if fi, err := os.Stat(mp); err == nil && !fi.IsDir() {
		return usagef("mountpoint %s is not a directory", mp)
	}
	return nil
}

// realPath resolves symlinks in the longest existing prefix of p.
func realPath(p string) string {
	rest := ""
	for q := p; ; q = filepath.Dir(q) {
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(r, rest)
		}
		if q == filepath.Dir(q) {
			return p
		}
		rest = filepath.Join(filepath.Base(q), rest)
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// clearStaleMount detaches what a killed daemon left at mp: its FUSE mount
// answers ENOTCONN ("transport endpoint is not connected") to everything
// that reaches it. statfs always reaches it (a stat may be answered from
// the kernel's attribute cache for a second). A live citadelfs mount there
// belongs to another daemon and is refused.
func clearStaleMount(mp string, log *slog.Logger) error {
	fstype, mounted := mountedAt(mp)
	var sfs unix.Statfs_t
	err := unix.Statfs(mp, &sfs)
	switch {
	case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
		log.Warn("mount: clearing the stale mount of a daemon that died", "mountpoint", mp)
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("mount: clear stale mount at %s: %w", mp, err)
		}
		return nil
	case err != nil:
		return nil // missing: created next
	case mounted && strings.HasPrefix(fstype, "fuse.citadelfs"):
		return fmt.Errorf("mount: %s is already a citadelfs mount (another daemon serves it; stop it first)", mp)
	}
	return nil
}

// mountedAt returns the file system type mounted at mp, from
// /proc/self/mounts (the last mount on a path is the one visible).
func mountedAt(mp string) (fstype string, ok bool) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && unescapeMount(fields[1]) == mp {
			fstype, ok = fields[2], true
		}
	}
	return fstype, ok
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// waitReady returns once the kernel answers a stat of the mount's status/
// folder: only then is the mount usable by others, and only then
// are readiness line and sd_notify sent. The stat runs on its own
// goroutine, as a syscall, while the FUSE server answers it; it is the
// daemon's only access to its own mount.
func waitReady(ctx context.Context, mp string, served <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		res := make(chan error, 1)
		go func() {
			var st unix.Stat_t
			err := unix.Stat(filepath.Join(mp, "status"), &st)
			res <- err
		}()
		select {
		case err := <-res:
			if err == nil {
				return nil
			}
		case <-served:
			return errors.New("mount: the mount went away before it was ready")
		case <-ctx.Done():
			return errInterrupted
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("mount: %s did not answer within %s", mp, readyTimeout)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mount: %s did not answer within %s", mp, readyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unmountServer unmounts, retrying while a process still uses the mount
// (EBUSY), and detaches it lazily as a last resort so the mountpoint never
// stays dead after the daemon exits.
func unmountServer(srv *cfs.Server, mp string, served <-chan struct{}, log *slog.Logger) error {
	select {
	case <-served:
		return nil // already unmounted from outside
	default:
	}
	var err error
	for try := 0; try < 6; try++ { // about 3 s: each try retries for 0.3 s

		if err = srv.Unmount(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.Warn("mount: mountpoint busy; detaching it", "mountpoint", mp, "err", err)
	if derr := unix.Unmount(mp, unix.MNT_DETACH); derr != nil {
		return fmt.Errorf("mount: unmount %s: %w (detach: %v)", mp, err, derr)
	}
	// Processes still inside the detached tree keep it served. Give them
	// a moment, then cut the connection (they get ENOTCONN, as after a
	// crash): the repository closes after this, and nothing may read it
	// then.
	select {
	case <-served:
		return nil
	case <-time.After(2 * time.Second):
	}
	log.Warn("mount: processes still use the detached mount; aborting its connection", "mountpoint", mp)
	if aerr := srv.Abort(); aerr != nil {
		return fmt.Errorf("mount: %w", aerr)
	}
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("mount: %s still served 5s after aborting its connection", mp)
	}
	return nil
}

// sdNotify tells systemd (Type=notify) about readiness and shutdown. It
// writes the datagram itself: a unix socket, abstract when the name starts
// with '@'. Without $NOTIFY_SOCKET it does nothing.
func sdNotify(state string) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return
	}
	if name[0] == '@' {
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	conn.Write([]byte(state))
}
