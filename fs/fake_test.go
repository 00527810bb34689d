package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fakeTree is an in-memory Tree for tests. Nodes are built with dir, file,
// symlink; their Handle is the *fnode.
type fakeTree struct {
	mu    sync.Mutex
	gen   atomic.Uint64
	snaps []Snapshot

	opens    atomic.Int64
	closes   atomic.Int64
	readDirs atomic.Int64
	lent     atomic.Int64 // Slices calls that returned views
	returned atomic.Int64 // their release calls
	// readDelay (a time.Duration) slows every Slices call, so a test can
	// interrupt one.
	readDelay atomic.Int64
	// snapErr fails Snapshots.
	snapErr error
}

type fnode struct {
	Node
	kids    []*fnode
	data    []byte
	extents []Extent              // nil: one extent covering data
	readErr atomic.Pointer[error] // returned by Slices for this file
}

func (fn *fnode) setReadErr(err error) {
	if err == nil {
		fn.readErr.Store(nil)
		return
	}
	fn.readErr.Store(&err)
}

var inoCounter atomic.Uint64

func newNode(name string, mode uint32) *fnode {
	t := time.Date(2026, 11, 26, 2, 0, 0, 123456789, time.UTC)
	n := &fnode{Node: Node{Name: name, Mode: mode, UID: 1000, GID: 1001, Mtime: t, Atime: t.Add(time.Second), Ctime: t.Add(2 * time.Second), Nlink: 1, Ino: inoCounter.Add(1) + 100}}
	n.Handle = n
	return n
}

func dir(name string, kids ...*fnode) *fnode {
	n := newNode(name, syscall.S_IFDIR|0o755)
	n.kids = kids
	n.Nlink = 2
	for _, k := range kids {
		if k.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			n.Nlink++
		}
	}
	return n
}

func file(name string, data []byte) *fnode {
	n := newNode(name, syscall.S_IFREG|0o644)
	n.data = data
	n.Size = int64(len(data))
	n.Blocks = (n.Size + 511) / 512
	return n
}

func symlink(name, target string) *fnode {
	n := newNode(name, syscall.S_IFLNK|0o777)
	n.Target = target
	n.Size = int64(len(target))
	return n
}

// node returns the Node value (newNode set its Handle to fn).
func (fn *fnode) node() Node { return fn.Node }

func (t *fakeTree) add(s Snapshot) {
	t.mu.Lock()
	t.snaps = append(t.snaps, s)
	t.mu.Unlock()
	t.gen.Add(1)
}

// forget removes the snapshot with the given id, as citadelfs forget does.
func (t *fakeTree) forget(id string) {
	t.mu.Lock()
	t.snaps = slices.DeleteFunc(t.snaps, func(s Snapshot) bool { return s.ID == id })
	t.mu.Unlock()
	t.gen.Add(1)
}

func snap(id string, tm time.Time, tags []string, roots map[string]*fnode) Snapshot {
	s := Snapshot{ID: id, Time: tm, Tags: tags}
	for label, r := range roots {
		s.Sources = append(s.Sources, SourceRoot{Label: label, Root: r.node()})
	}
	return s
}

func (t *fakeTree) Snapshots(ctx context.Context) ([]Snapshot, error) {
	if t.snapErr != nil {
		return nil, t.snapErr
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Snapshot(nil), t.snaps...), nil
}

func (t *fakeTree) Generation() uint64 { return t.gen.Load() }

func (t *fakeTree) ReadDir(ctx context.Context, d Node) ([]Node, error) {
	t.readDirs.Add(1)
	fn, ok := d.Handle.(*fnode)
	if !ok {
		return nil, errors.New("fake: bad handle")
	}
	if fn.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, syscall.ENOTDIR
	}
	out := make([]Node, len(fn.kids))
	for i, k := range fn.kids {
		out[i] = k.node()
	}
	return out, nil
}

func (t *fakeTree) Open(ctx context.Context, f Node) (File, error) {
	fn, ok := f.Handle.(*fnode)
	if !ok {
		return nil, iofs.ErrNotExist
	}
	t.opens.Add(1)
	return &fakeFile{t: t, fn: fn}, nil
}

type fakeFile struct {
	t      *fakeTree
	fn     *fnode
	closed atomic.Bool
}

var errCorrupt = errors.New("fake: chunk 1f2e failed its hash check")

// Slices lends the file's bytes in 100 000-byte pieces (so one kernel read
// gets several views) and counts what it lent and got back.
func (f *fakeFile) Slices(ctx context.Context, off int64, n int) ([][]byte, func(), error) {
	if f.closed.Load() {
		return nil, nil, errors.New("fake: read after close")
	}
	if d := time.Duration(f.t.readDelay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	if err := f.fn.readErr.Load(); err != nil {
		return nil, nil, *err
	}
	data := f.fn.data
	end := min(off+int64(n), int64(len(data)))
	var views [][]byte
	for pos := off; pos < end; {
		k := min(end, (pos/100000+1)*100000)
		views = append(views, data[pos:k:k])
		pos = k
	}
	f.t.lent.Add(1)
	var once atomic.Bool
	return views, func() {
		if once.Swap(true) {
			panic("fake: views released twice")
		}
		f.t.returned.Add(1)
	}, nil
}

func (f *fakeFile) DataExtents() []Extent {
	if f.fn.extents != nil {
		return f.fn.extents
	}
	return []Extent{{0, int64(len(f.fn.data))}}
}

func (f *fakeFile) Close() error {
	if f.closed.Swap(true) {
		return errors.New("fake: double close")
	}
	f.t.closes.Add(1)
	return nil
}

// fakeStatus is a StatusSource whose documents count renders.
type fakeStatus struct {
	files   []string
	renders atomic.Int64
}

func (s *fakeStatus) StatusFiles() []string { return s.files }

func (s *fakeStatus) Render(ctx context.Context, name string) ([]byte, error) {
	n := s.renders.Add(1)
	return []byte(name + " render " + string(rune('0'+n%10)) + "\n"), nil
}
