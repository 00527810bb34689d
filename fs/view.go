package fs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The view is the virtual part of the tree (everything above a source's
// root directory), computed from Tree.Snapshots as one immutable value per
// Tree.Generation. Nodes never hold on to a view: they name their folder by
// its virtual path and look it up in the current view on every call, so a
// new snapshot changes what latest/ shows without touching any node.

const (
	dayLayout  = "2006-01-02"
	timeLayout = "2006-01-02T15:04:05"

	latestDir    = "latest"
	snapshotsDir = "snapshots"
	tagsDir      = "tags"
	hostsDir     = "hosts"
	statusDir    = "status"
)

// view is the virtual tree for one generation.
type view struct {
	gen uint64
	// dirs holds every virtual folder by its path ("" is the root,
	// "latest", "snapshots/2026-11-26T02:00:00", "tags/daily",
	// "hosts/gpu02/latest", ...).
	dirs map[string]*vdir
	// snapNames is each snapshot's folder name under snapshots/, by ID;
	// the next view keeps them (see snapshotNames).
	snapNames map[string]string
}

// vdir is one virtual folder.
type vdir struct {
	path    string
	names   []string // sorted
	entries map[string]ventry
	// mtime is the newest snapshot time shown anywhere below the folder.
	mtime   time.Time
	subdirs int
}

// ventry is one name in a virtual folder: another virtual folder, a
// source's root, or status/.
type ventry struct {
	dir    string    // path of a virtual folder, when non-empty
	src    *srcEntry // a source root, when non-nil
	status bool      // the status/ folder
	mtime  time.Time // for virtual folders and source roots
	isDir  bool      // the entry is a directory
	mode   uint32    // full st_mode for the directory listing
}

// srcEntry is one source root shown at a virtual path.
type srcEntry struct {
	scope *scope
	root  Node
}

// scope is shared by every node inside one source root shown at one
// virtual path; it feeds the inode identity and the log lines.
type scope struct {
	snapID string
	label  string
	// vpath is where the source root is shown, e.g. "latest/models".
	vpath string
}

// validName reports whether s can be a directory entry name.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// idDigits is how many leading digits of its id a snapshot's folder name
// carries when another snapshot of the same second holds the bare name.
const idDigits = 8

// snapshotNames gives every snapshot its folder name under snapshots/ (and
// tags/<tag>/): the local time to the second, T. The snapshot of that
// second committed first is T; every other is T.<first 8 digits of its
// id>, more digits if an earlier committed one of the second took that.
// So a new snapshot, even one backdated with --time, never renames an
// existing one's folder.
//
// prev holds the names the previous view gave (by snapshot ID): a
// snapshot keeps the name it was shown under for as long as the mount
// runs, so forgetting the snapshot that held T does not rename the others
// of its second under a reader copying out of them (a new mount names
// them afresh). snaps is in Tree.Snapshots' order, in which the first of
// a second is the one committed first.
func snapshotNames(snaps []Snapshot, loc *time.Location, prev map[string]string) []string {
	names := make([]string, len(snaps))
	taken := map[string]bool{}
	for i := range snaps {
		base := snaps[i].Time.In(loc).Format(timeLayout)
		if n, ok := prev[snaps[i].ID]; ok && (n == base || strings.HasPrefix(n, base+".")) && !taken[n] {
			names[i] = n
			taken[n] = true
		}
	}
	seen := map[string]bool{} // seconds with an earlier committed snapshot
	for i := range snaps {
		base := snaps[i].Time.In(loc).Format(timeLayout)
		first := !seen[base]
		seen[base] = true
		if names[i] != "" {
			continue
		}
		if first && !taken[base] {
			names[i] = base
		} else {
			names[i] = suffixedName(base, snaps[i].ID, taken)
		}
		taken[names[i]] = true
	}
	return names
}

// suffixedName is base.<id prefix>, the shortest of at least idDigits
// digits that is not taken yet.
func suffixedName(base, id string, taken map[string]bool) string {
	for k := min(idDigits, len(id)); k <= len(id); k++ {
		if n := base + "." + id[:k]; !taken[n] {
			return n
		}
	}
	// Only when another id has this whole id as its prefix.
	for k := 1; ; k++ {
		if n := fmt.Sprintf("%s.%s.%d", base, id, k); !taken[n] {
			return n
		}
	}
}

// ownHost reports whether snapshot s belongs in the top-level <day>/ and
// latest/ of a mount for host: every snapshot when the mount names no
// host, and a snapshot that records none (written before hosts were
// recorded) on every host.
func ownHost(s *Snapshot, host string) bool {
	return host == "" || s.Host == "" || s.Host == host
}

// buildView computes the virtual tree. snaps is Tree.Snapshots' result;
// host is the mounting host's name (Options.Host), whose snapshots the
// top-level day folders and latest/ show; prev is the view it replaces
// (nil for the first), whose snapshot folder names are kept.
func buildView(gen uint64, snaps []Snapshot, loc *time.Location, host string, withStatus bool, prev *view) *view {
	var prevNames map[string]string
	if prev != nil {
		prevNames = prev.snapNames
	}
	names := snapshotNames(snaps, loc, prevNames)

	b := &viewBuilder{v: &view{gen: gen, dirs: map[string]*vdir{}, snapNames: make(map[string]string, len(snaps))}}
	b.dir("")
	b.subdir("", latestDir)
	b.subdir("", snapshotsDir)
	b.subdir("", tagsDir)
	b.subdir("", hostsDir)
	if withStatus {
		b.dir("").add(statusDir, ventry{status: true, isDir: true, mode: modeDir})
	}
	for i := range snaps {
		s := &snaps[i]
		b.v.snapNames[s.ID] = names[i]
		day := s.Time.In(loc).Format(dayLayout)
		// Where the snapshot is one of "the newest": the top level for
		// this host's own, hosts/<host>/ for every host's.
		var newest []string
		if ownHost(s, host) {
			newest = append(newest, b.subdir("", day), latestDir)
		}
		if validName(s.Host) {
			hostDir := b.subdir(hostsDir, s.Host)
			newest = append(newest, b.subdir(hostDir, day), b.subdir(hostDir, latestDir))
		}
		snapDir := b.subdir(snapshotsDir, names[i])
		var tagDirs []string
		for _, tag := range s.Tags {
			if !validName(tag) {
				continue
			}
			tagDir := b.subdir(tagsDir, tag)
			tagDirs = append(tagDirs, b.subdir(tagDir, names[i]))
		}
		for _, src := range s.Sources {
			if !validName(src.Label) {
				continue
			}
			// Snapshots come oldest first (Tree.Snapshots), so a later
			// one replaces an earlier one of the same day in <day>/ and
			// in latest/: fs shows the order it is given.
			for _, d := range append(append(newest, snapDir), tagDirs...) {
				b.source(d, s, src)
			}
		}
	}
	b.finish()
	return b.v
}

const modeDir = 0o040000 | 0o555

type viewBuilder struct{ v *view }

func (b *viewBuilder) dir(p string) *vdir {
	d := b.v.dirs[p]
	if d == nil {
		d = &vdir{path: p, entries: map[string]ventry{}}
		b.v.dirs[p] = d
	}
	return d
}

func joinPath(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// subdir makes sure dir/name exists as a virtual folder and returns its path.
func (b *viewBuilder) subdir(dir, name string) string {
	p := joinPath(dir, name)
	if _, ok := b.dir(dir).entries[name]; !ok {
		b.dir(dir).add(name, ventry{dir: p, isDir: true, mode: modeDir})
		b.dir(p)
	}
	return p
}

func (b *viewBuilder) source(dir string, s *Snapshot, src SourceRoot) {
	p := joinPath(dir, src.Label)
	b.dir(dir).add(src.Label, ventry{
		src:   &srcEntry{scope: &scope{snapID: s.ID, label: src.Label, vpath: p}, root: src.Root},
		mtime: s.Time,
		isDir: src.Root.Mode&sIFMT == sIFDIR,
		mode:  src.Root.Mode,
	})
	// Every folder on the way up shows the newest snapshot time below it.
	for q := dir; ; {
		if d := b.v.dirs[q]; d != nil && s.Time.After(d.mtime) {
			d.mtime = s.Time
		}
		if q == "" {
			break
		}
		if i := strings.LastIndexByte(q, '/'); i >= 0 {
			q = q[:i]
		} else {
			q = ""
		}
	}
}

func (d *vdir) add(name string, e ventry) { d.entries[name] = e }

// finish sorts names, counts subfolders and fills the entry times of
// virtual folders.
func (b *viewBuilder) finish() {
	for _, d := range b.v.dirs {
		d.names = make([]string, 0, len(d.entries))
		for name, e := range d.entries {
			d.names = append(d.names, name)
			if e.isDir {
				d.subdirs++
			}
			if e.dir != "" {
				e.mtime = b.v.dirs[e.dir].mtime
				d.entries[name] = e
			}
		}
		sort.Strings(d.names)
	}
}

// viewCache rebuilds the view when Tree.Generation changes.
type viewCache struct {
	tree       Tree
	loc        *time.Location
	host       string // Options.Host
	withStatus bool

	mu  sync.Mutex // serialises rebuilds
	cur atomic.Pointer[view]
}

// get returns the view for the tree's current generation. Concurrent
// callers during a rebuild wait for it rather than rebuilding again.
func (c *viewCache) get(ctx context.Context) (*view, error) {
	gen := c.tree.Generation()
	if v := c.cur.Load(); v != nil && v.gen == gen {
		return v, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.cur.Load(); v != nil && v.gen == gen {
		return v, nil
	}
	snaps, err := c.tree.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("fs: list snapshots: %w", err)
	}
	// gen was read before Snapshots: if a snapshot was committed in
	// between, the list is newer than gen says and the next call rebuilds
	// once more, which is harmless. The other order could miss one.
	v := buildView(gen, snaps, c.loc, c.host, c.withStatus, c.cur.Load())
	c.cur.Store(v)
	return v, nil
}
