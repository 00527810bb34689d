package fs

import (
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
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
	ra      *prefetcher
	started time.Time // mtime of status/ entries

	openMu sync.Mutex
	open   map[*fileHandle]struct{} // handles not yet released
}

func newMountFS(o Options) (*mountFS, error) {
	if o.Tree == nil {
		return nil, errors.New("fs: Options.Tree is required")
	}
	o = o.withDefaults()
	return &mountFS{
		opts:    o,
		views:   &viewCache{tree: o.Tree, loc: o.Location, withStatus: o.Status != nil},
		ra:      newPrefetcher(o),
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

// Server is a mounted tree.
type Server struct {
	srv *fuse.Server
	m   *mountFS
	dir string
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
		opts.MountOptions.Logger = log.Default()
		opts.Logger = log.Default()
	}
	srv, err := gofs.Mount(dir, m.root(), opts)
	if err != nil {
		return nil, fmt.Errorf("fs: mount %s: %w", dir, err)
	}
	setReadahead(dir, m.opts.MaxRead)
	return &Server{srv: srv, m: m, dir: dir}, nil
}

// setReadahead raises the kernel's readahead window for the mount to
// MaxRead. The FUSE handshake caps it at 128 KiB, so without this the
// kernel reads a sequential file in 128 KiB requests, eight round trips
// per 1 MiB chunk; the window itself is the mount's backing device's
// read_ahead_kb, which root may set. Best effort: without it reads are
// correct, only smaller.
func setReadahead(dir string, maxRead int) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return
	}
	bdi := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
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
	s.m.closeAll()
	return nil
}

// Wait blocks until the tree is unmounted, by Unmount or from outside
// (umount(8), umount -l), then closes every File still open.
func (s *Server) Wait() {
	s.srv.Wait()
	s.m.closeAll()
}
