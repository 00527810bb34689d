package fs

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// mountFS is the state one mount shares between its nodes.
type mountFS struct {
	opts    Options
	views   *viewCache
	started time.Time // mtime of status/ entries

	openMu sync.Mutex
	open   map[*fileHandle]struct{} // handles not yet released

	mounted  atomic.Pointer[topDir] // the root node, once mounted
	invalMu  sync.Mutex
	invalled *view // the view the kernel's cached names were last checked against
}

func newMountFS(o Options) (*mountFS, error) {
	if o.Tree == nil {
		return nil, errors.New("fs: Options.Tree is required")
	}
	o = o.withDefaults()
	return &mountFS{
		opts:    o,
		views:   &viewCache{tree: o.Tree, loc: o.Location, host: o.Host, withStatus: o.Status != nil},
		started: time.Now(),
		open:    map[*fileHandle]struct{}{},
	}, nil
}

// root returns the root node (the virtual folder with path "").
func (m *mountFS) root() *topDir { return &topDir{m: m} }

// nodeOptions are the go-fuse settings every mount (and every unit test's
// unmounted tree) uses.
func (m *mountFS) nodeOptions() *gofs.Options {
	zero := time.Duration(0)
	return &gofs.Options{
		// No mount-wide entry/attr timeouts: every answer sets its own
		// (go-fuse would replace an explicit 0 with the mount-wide
		// value). A negative timeout must be set for go-fuse to pass
		// negative entries on; 0 means virtual folders' misses are not
		// cached, and dirNode sets a long one for snapshot misses.
		NegativeTimeout: &zero,
		// Faithful modes: a 0000 file stays 0000 rather than 0644.
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: 1},
	}
}

// invalidateVirtual tells the kernel to forget each name it caches under a
// virtual folder whose meaning changed since the last call: latest/<label>
// and <day>/<label> now showing a newer snapshot, or a forgotten snapshot's
// folders. Virtual names carry a short entry timeout (TopAttrTimeout), so
// a path walk does not ask again for every file it touches, and this is
// what makes a change visible before that timeout. It must not run inside
// a FUSE request (the kernel may wait for that request to invalidate).
func (m *mountFS) invalidateVirtual() {
	root := m.mounted.Load()
	if root == nil {
		return
	}
	m.invalMu.Lock()
	defer m.invalMu.Unlock()
	v, err := m.views.get(context.Background())
	if err != nil || v == m.invalled {
		return
	}
	old := m.invalled
	m.invalled = v
	notifyChanged(&root.Inode, root.path, old, v)
}

// primeInval records the view the kernel's first cached names will be
// checked against. If listing the snapshots fails now, invalled stays nil
// and the first invalidateVirtual that gets a view treats every name as
// changed.
func (m *mountFS) primeInval() {
	m.invalMu.Lock()
	defer m.invalMu.Unlock()
	m.invalled, _ = m.views.get(context.Background())
}

// notifyChanged walks the virtual folders the kernel knows below n (at
// virtual path p) and invalidates every cached name whose entry differs
// between the two views. A nil old view (the mount could not list the
// snapshots when it started) differs in every name.
func notifyChanged(n *gofs.Inode, p string, old, cur *view) {
	var was *vdir
	if old != nil {
		was = old.dirs[p]
	}
	for name, child := range n.Children() {
		if d, ok := child.Operations().(*topDir); ok {
			notifyChanged(child, d.path, old, cur)
		}
		if !sameEntry(was, cur.dirs[p], name) {
			n.NotifyEntry(name) // ENOENT when the kernel dropped it already
		}
	}
}

// sameEntry reports whether name means the same thing in both folders.
func sameEntry(a, b *vdir, name string) bool {
	if a == nil || b == nil {
		return false
	}
	x, okx := a.entries[name]
	y, oky := b.entries[name]
	if !okx || !oky || x.dir != y.dir || x.status != y.status || (x.src == nil) != (y.src == nil) {
		return false
	}
	return x.src == nil || (x.src.scope.snapID == y.src.scope.snapID && x.src.scope.label == y.src.scope.label)
}

// Server is a mounted tree.
type Server struct {
	srv *fuse.Server
	m   *mountFS
	dir string

	stop      chan struct{} // closed when the tree is unmounted
	stopOnce  sync.Once
	watchDone chan struct{} // closed when watch has returned

	// conn is the kernel's number for this FUSE connection (the mount's
	// device minor), which names /sys/fs/fuse/connections/<conn>; 0 if
	// unknown.
	conn uint32
}

// Mount mounts the tree read-only at dir and serves it on background
// goroutines until Unmount. It returns once the kernel has the mount.
// Mount options: ro, nosuid, nodev, default_permissions (the kernel checks
// each file's own owner and mode, so a 0600 file stays private),
// allow_other only with Options.AllowOther. As root it mounts with
// mount(2) directly; otherwise it falls back to fusermount.
func Mount(dir string, o Options) (*Server, error) {
	m, err := newMountFS(o)
	if err != nil {
		return nil, err
	}
	opts := m.nodeOptions()
	opts.MountOptions = fuse.MountOptions{
		FsName:     m.opts.FsName,
		Name:       "citadelfs",
		AllowOther: m.opts.AllowOther,
		Options:    []string{"ro", "default_permissions", "nosuid", "nodev"},
		// Read-only as a superblock flag too, so the VFS refuses writes
		// before they reach us.
		DirectMountFlags: syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV,
		// As root, mount(2) and umount(2) directly and never fall back
		// to exec'ing fusermount: a fork/exec from the process that
		// serves the mount is one of go-fuse's known deadlocks, and a
		// failed unmount must come back as EBUSY, not as a helper's
		// message. Others need fusermount.
		DirectMount:       true,
		DirectMountStrict: os.Geteuid() == 0,
		MaxWrite:          m.opts.MaxRead,
		MaxReadAhead:      m.opts.MaxRead,
		// POSIX ACLs: the kernel enforces the recorded ACL along with
		// the mode (default_permissions), as on the source file system;
		// without this a user an ACL admitted would be refused.
		EnableAcl: true,
		// Reads are answered from memory; splicing them through a pipe
		// adds a copy, and go-fuse logs a line for every 1 MiB read that
		// exceeds the pipe's size.
		DisableSplice: true,
		// Security xattrs are part of what a restore copies (file
		// capabilities, SELinux labels); serve them.
		IgnoreSecurityLabels: false,
		Debug:                m.opts.Debug,
	}
	if m.opts.Debug {
		// go-fuse logs through a *log.Logger: bridged onto the mount's
		// slog logger at DEBUG, so its lines take --log-format too.
		l := slog.NewLogLogger(m.opts.Logger.Handler(), slog.LevelDebug)
		opts.MountOptions.Logger = l
		opts.Logger = l
	}
	root := m.root()
	// What the kernel will cache is checked against this view first. If
	// listing fails now, the first Refresh invalidates every name.
	m.primeInval()
	srv, err := gofs.Mount(dir, root, opts)
	if err != nil {
		return nil, fmt.Errorf("fs: mount %s: %w", dir, err)
	}
	s := &Server{srv: srv, m: m, dir: dir, stop: make(chan struct{}), watchDone: make(chan struct{})}
	// The mount's device: FUSE's anonymous major 0, and a minor that
	// numbers the connection and the readahead's backing device.
	var st syscall.Stat_t
	if syscall.Stat(dir, &st) == nil {
		s.conn = unix.Minor(st.Dev)
		setReadahead(st.Dev, m.opts.MaxRead)
	}
	s.m.mounted.Store(root)
	go s.watch()
	return s, nil
}

// Abort ends the FUSE connection through the kernel's fusectl
// (/sys/fs/fuse/connections/<n>/abort): every request in flight and to
// come fails with ENOTCONN, and the serving goroutines stop, so Wait
// returns. It is the last resort of a shutdown whose mount was detached
// while processes still had files open in it: without it those
// processes would keep the server, and the repository under it, in use
// after the daemon closed the repository.
func (s *Server) Abort() error {
	if s.conn == 0 {
		return fmt.Errorf("fs: abort %s: connection unknown", s.dir)
	}
	p := fmt.Sprintf("%s/%d/abort", fusectlDir, s.conn)
	err := os.WriteFile(p, []byte("1"), 0)
	if errors.Is(err, iofs.ErrNotExist) {
		// Many hosts and containers boot without fusectl mounted; as root
		// we can mount it (it is what systemd mounts at boot) and retry.
		if merr := mountFusectl(); merr != nil {
			return fmt.Errorf("fs: abort %s: fusectl is not mounted at %s and mounting it failed: %v", s.dir, fusectlDir, merr)
		}
		err = os.WriteFile(p, []byte("1"), 0)
	}
	if err != nil {
		return fmt.Errorf("fs: abort %s: %w", s.dir, err)
	}
	return nil
}

// fusectlDir is where the kernel's FUSE control file system is mounted.
const fusectlDir = "/sys/fs/fuse/connections"

// mountFusectl mounts fusectl at fusectlDir unless it is mounted already
// (a mounted fusectl lists one directory per connection, and ours exists).
func mountFusectl() error {
	err := unix.Mount("fusectl", fusectlDir, "fusectl", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if errors.Is(err, unix.EBUSY) {
		return nil // mounted meanwhile
	}
	return err
}

// watchInterval is how often the server looks for a new Tree.Generation
// when nobody calls Refresh.
const watchInterval = 100 * time.Millisecond

// watch refreshes until the tree is unmounted.
func (s *Server) watch() {
	defer close(s.watchDone)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Refresh()
		}
	}
}

// Refresh makes the kernel forget the names it cached under the virtual
// folders if the set of snapshots changed since the last call, so the
// next path walk sees the new snapshot (or no longer the forgotten one).
// The server calls it every watchInterval; a caller that just committed a
// snapshot calls it to make that visible before it reports success.
func (s *Server) Refresh() { s.m.invalidateVirtual() }

// stopWatch stops the watcher and waits for a Refresh it is running, which
// reads the Tree, to finish: the caller may close the Tree next.
func (s *Server) stopWatch() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.watchDone
}

// setReadahead raises the kernel's readahead window for the mount to
// MaxRead. The FUSE handshake caps it at 128 KiB, so without this the
// kernel reads a sequential file in 128 KiB requests, eight round trips
// per 1 MiB chunk; the window itself is the mount's backing device's
// read_ahead_kb, which root may set. Best effort: without it reads are
// correct, only smaller.
func setReadahead(dev uint64, maxRead int) {
	bdi := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(dev), unix.Minor(dev))
	os.WriteFile(bdi, []byte(fmt.Sprint(maxRead>>10)), 0)
}

// Unmount unmounts the tree (go-fuse retries while the kernel still
// reports it busy), waits for the serving goroutines to stop and closes
// every File still open. It fails with EBUSY while a process uses the
// mount; the caller may retry or detach it.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("fs: unmount %s: %w", s.dir, err)
	}
	s.stopWatch()
	s.m.closeAll()
	return nil
}

// Wait blocks until the tree is unmounted, by Unmount or from outside
// (umount(8), umount -l), then closes every File still open.
func (s *Server) Wait() {
	s.srv.Wait()
	s.stopWatch()
	s.m.closeAll()
}
