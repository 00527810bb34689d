package main

// ls and find: looking inside snapshots without a mount, as restic's do.
// Both walk the trees from the repository; a subtree seen before (the
// same id in another snapshot, an unchanged model directory) is not
// walked again by find.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"citadelfs/index"
	"citadelfs/snapshot"
)

var lsFlags struct {
	long      bool
	recursive bool
}

var findFlags struct {
	long      bool
	snapshots []string
	sources   []string
}

func init() {
	register(&command{
		name:      "ls",
		readsOnly: true,
		delegable: true,
		summary:   "list the files of a snapshot (or of a path inside it) without a mount",
		usage:     "SNAPSHOT[:LABEL/PATH] [--long] [--recursive=false]   (SNAPSHOT: id prefix or latest)",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&lsFlags.long, "long", "l", false, "mode, owner, size and modification time as ls -l does")
			fs.BoolVar(&lsFlags.recursive, "recursive", true, "list everything below the path, not only its entries")
		},
		run: runLs,
	})
	register(&command{
		name:      "find",
		readsOnly: true,
		delegable: true,
		summary:   "find files by name in every snapshot without a mount",
		usage:     "PATTERN... [--snapshot ID ...] [--source LABEL ...] [--long]",
		flags: func(fs *pflag.FlagSet) {
			fs.BoolVarP(&findFlags.long, "long", "l", false, "mode, owner, size and modification time as ls -l does")
			findFlags.snapshots, findFlags.sources = nil, nil
			fs.StringArrayVar(&findFlags.snapshots, "snapshot", nil, "only this snapshot (id prefix or latest; repeatable)")
			fs.StringArrayVar(&findFlags.sources, "source", nil, "only this source (repeatable)")
		},
		run: runFind,
	})
}

// lsEntry is one file as ls and find print it; the JSON keys are those of
// ls --json and find --json (docs/cli.md).
type lsEntry struct {
	Path   string    `json:"path"`
	Type   string    `json:"type"`
	Mode   string    `json:"mode"`
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	Size   int64     `json:"size"`
	Mtime  time.Time `json:"mtime"`
	Target string    `json:"target,omitempty"`
}

func entryOf(p string, n *snapshot.Node) lsEntry {
	e := lsEntry{Path: p, Type: nodeTypeName(n.Type), Mode: fileMode(n).String(), UID: n.UID, GID: n.GID, Size: n.Size,
		Mtime: time.Unix(0, n.Mtime).UTC(), Target: n.Target}
	if n.Type == snapshot.TypeDir {
		e.Size = 0
	}
	return e
}

func nodeTypeName(t snapshot.NodeType) string {
	switch t {
	case snapshot.TypeFile:
		return "file"
	case snapshot.TypeDir:
		return "dir"
	case snapshot.TypeSymlink:
		return "symlink"
	case snapshot.TypeFIFO:
		return "fifo"
	case snapshot.TypeCharDev:
		return "chardev"
	case snapshot.TypeBlockDev:
		return "blockdev"
	case snapshot.TypeSocket:
		return "socket"
	}
	return "unknown"
}

// fileMode is n's st_mode as Go's FileMode, for the ls -l column.
func fileMode(n *snapshot.Node) os.FileMode {
	m := os.FileMode(n.Mode & 0o777)
	switch n.Type {
	case snapshot.TypeDir:
		m |= os.ModeDir
	case snapshot.TypeSymlink:
		m |= os.ModeSymlink
	case snapshot.TypeFIFO:
		m |= os.ModeNamedPipe
	case snapshot.TypeCharDev:
		m |= os.ModeDevice | os.ModeCharDevice
	case snapshot.TypeBlockDev:
		m |= os.ModeDevice
	case snapshot.TypeSocket:
		m |= os.ModeSocket
	}
	if n.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

// entryPrinter prints entries as plain paths or, with long, as ls -l does.
type entryPrinter struct {
	w    io.Writer
	tw   *tabwriter.Writer
	long bool
}

func newEntryPrinter(w io.Writer, long bool) *entryPrinter {
	return &entryPrinter{w: w, tw: tabwriter.NewWriter(w, 0, 4, 0, ' ', tabwriter.AlignRight), long: long}
}

func (p *entryPrinter) print(e lsEntry) {
	if !p.long {
		fmt.Fprintln(p.w, e.Path)
		return
	}
	name := e.Path
	if e.Target != "" {
		name += " -> " + e.Target
	}
	fmt.Fprintf(p.tw, "%s\t %d\t %d\t %d\t %s\t %s\n", e.Mode, e.UID, e.GID, e.Size, e.Mtime.Local().Format("2006-01-02 15:04:05"), name)
}

func (p *entryPrinter) flush() { p.tw.Flush() }

func runLs(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) != 1 {
		return usagef("ls needs SNAPSHOT[:LABEL/PATH]")
	}
	ref, sub, _ := strings.Cut(args[0], ":")
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	picks, err := restorePicks(ctx, repo, ref, sub)
	if err != nil {
		return err
	}
	entries := []lsEntry{}
	pr := newEntryPrinter(env.stdout, lsFlags.long)
	emit := func(e lsEntry) {
		if env.global.json {
			entries = append(entries, e)
		} else {
			pr.print(e)
		}
	}
	for _, p := range picks {
		if p.node == nil { // the whole snapshot: every source
			for _, src := range p.snap.Sources {
				root := src.RootNode()
				if err := lsWalk(ctx, repo, &root, "/"+src.Label, true, emit); err != nil {
					return err
				}
			}
			continue
		}
		base := "/" + strings.Trim(sub, "/")
		if p.label != "" && strings.Trim(sub, "/") == "" {
			base = "/" + p.label
		}
		if err := lsWalk(ctx, repo, p.node, base, true, emit); err != nil {
			return err
		}
	}
	if env.global.json {
		return writeJSON(env, entries)
	}
	pr.flush()
	return nil
}

// lsWalk emits n at p and, for a directory, its entries (all of them below
// with --recursive, else one level).
func lsWalk(ctx context.Context, repo *snapshot.Repository, n *snapshot.Node, p string, top bool, emit func(lsEntry)) error {
	emit(entryOf(p, n))
	if n.Type != snapshot.TypeDir || (!top && !lsFlags.recursive) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return errInterrupted
	}
	t, err := repo.LoadTree(ctx, n.Subtree)
	if err != nil {
		return err
	}
	for i := range t.Nodes {
		if err := lsWalk(ctx, repo, &t.Nodes[i], path.Join(p, t.Nodes[i].Name), false, emit); err != nil {
			return err
		}
	}
	return nil
}

// findMatch is find --json's element: one snapshot and what matched in it.
type findMatch struct {
	Snapshot string    `json:"snapshot"`
	Time     time.Time `json:"time"`
	Matches  []lsEntry `json:"matches"`
}

func runFind(ctx context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return usagef("find needs a PATTERN (a shell pattern for the name, or for the path when it has a /)")
	}
	for _, pat := range args {
		if _, err := path.Match(pat, ""); err != nil {
			return usagef("bad pattern %q: %v", pat, err)
		}
	}
	repo, release, err := openRepo(ctx, env)
	if err != nil {
		return err
	}
	defer release()
	snaps, err := repo.Snapshots()
	if err != nil {
		return err
	}
	if len(findFlags.snapshots) > 0 {
		var only []*snapshot.Snapshot
		seen := map[index.ID]bool{}
		for _, ref := range findFlags.snapshots {
			if ref == "latest" {
				picks, err := repo.LatestSources()
				if err != nil {
					return err
				}
				for _, p := range picks {
					if !seen[p.Snapshot.ID] {
						seen[p.Snapshot.ID] = true
						only = append(only, p.Snapshot)
					}
				}
				continue
			}
			s, err := repo.FindSnapshot(ref)
			if err != nil {
				return err
			}
			if !seen[s.ID] {
				seen[s.ID] = true
				only = append(only, s)
			}
		}
		snaps = only
	}
	f := &finder{repo: repo, ctx: ctx, patterns: args, memo: map[index.ID][]foundNode{}}
	out := []findMatch{}
	for _, s := range snaps {
		m := findMatch{Snapshot: s.ID.String(), Time: s.Time, Matches: []lsEntry{}}
		for _, src := range s.Sources {
			if len(findFlags.sources) > 0 && !contains(findFlags.sources, src.Label) {
				continue
			}
			root := src.RootNode()
			p := "/" + src.Label
			if f.match(p) {
				m.Matches = append(m.Matches, entryOf(p, &root))
			}
			found, err := f.tree(root.Subtree, p)
			if err != nil {
				return err
			}
			for _, fn := range found {
				m.Matches = append(m.Matches, entryOf(p+"/"+fn.rel, &fn.node))
			}
		}
		if len(m.Matches) == 0 {
			continue
		}
		if env.global.json {
			out = append(out, m)
			continue
		}
		fmt.Fprintf(env.stdout, "Found matching entries in snapshot %s from %s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"))
		pr := newEntryPrinter(env.stdout, findFlags.long)
		for _, e := range m.Matches {
			pr.print(e)
		}
		pr.flush()
		fmt.Fprintln(env.stdout)
	}
	if env.global.json {
		return writeJSON(env, out)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

type foundNode struct {
	rel  string // below the tree it was found in
	node snapshot.Node
}

// finder matches trees' entries against the patterns. A pattern without
// a / matches names (restic's and find -name's way), with a / the whole
// path from the snapshot's root (/LABEL/...). Name matches depend on the
// tree alone, so each tree's are remembered by its id and a subtree met
// again (in another snapshot, unchanged) is not walked twice.
type finder struct {
	repo     *snapshot.Repository
	ctx      context.Context
	patterns []string
	memo     map[index.ID][]foundNode
}

func (f *finder) match(full string) bool {
	for _, pat := range f.patterns {
		var ok bool
		if strings.Contains(pat, "/") {
			ok, _ = path.Match("/"+strings.TrimPrefix(pat, "/"), full)
		} else {
			ok, _ = path.Match(pat, path.Base(full))
		}
		if ok {
			return true
		}
	}
	return false
}

func (f *finder) byPath() bool {
	for _, pat := range f.patterns {
		if strings.Contains(pat, "/") {
			return true
		}
	}
	return false
}

// tree returns the matches below tree id, whose path is prefix, with
// paths relative to it.
func (f *finder) tree(id index.ID, prefix string) ([]foundNode, error) {
	memo := !f.byPath()
	if m, ok := f.memo[id]; ok && memo {
		return m, nil
	}
	if err := f.ctx.Err(); err != nil {
		return nil, errInterrupted
	}
	t, err := f.repo.LoadTree(f.ctx, id)
	if err != nil {
		return nil, err
	}
	var out []foundNode
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if f.match(prefix + "/" + n.Name) {
			out = append(out, foundNode{rel: n.Name, node: *n})
		}
		if n.Type == snapshot.TypeDir {
			sub, err := f.tree(n.Subtree, prefix+"/"+n.Name)
			if err != nil {
				return nil, err
			}
			for _, s := range sub {
				out = append(out, foundNode{rel: n.Name + "/" + s.rel, node: s.node})
			}
		}
	}
	if memo {
		f.memo[id] = out
	}
	return out, nil
}
