package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"citadelfs/index"
	"citadelfs/snapshot/codec"
)

// RepairedXattr marks, in a snapshot written by RepairSnapshots, a file
// kept truncated to its good prefix or a directory whose listing was
// lost. Its value says what was lost, on one line. Restore writes it like
// any extended attribute and the mount shows it, so a repaired file is
// never mistaken for a whole one.
const RepairedXattr = "user.citadelfs.repaired"

// RepairedTag is added to every snapshot RepairSnapshots writes.
const RepairedTag = "repaired"

// RepairSnapshotsResult is what RepairSnapshots did (or, with DryRun,
// would do).
type RepairSnapshotsResult struct {
	DryRun    bool             `json:"dry_run"`
	Snapshots []SnapshotRepair `json:"snapshots"`
	// Forgotten lists the originals removed (--forget).
	Forgotten []index.ID `json:"forgotten"`
}

// SnapshotRepair is one damaged snapshot.
type SnapshotRepair struct {
	Snapshot index.ID  `json:"snapshot"`
	Time     time.Time `json:"time"`
	// Repaired is the snapshot written in its place (zero in a dry run,
	// or when it would be empty).
	Repaired index.ID `json:"repaired,omitzero"`
	// Empty says nothing of the snapshot could be kept: every source's
	// listing was lost. No repaired snapshot is written for it.
	Empty bool           `json:"empty,omitempty"`
	Paths []RepairedPath `json:"paths"`
}

// RepairedPath is one file or directory of a repaired snapshot.
type RepairedPath struct {
	// Path is label/path inside the snapshot.
	Path string `json:"path"`
	// Kind is "file" (kept truncated to its first Kept of Size bytes) or
	// "directory" (its listing was lost: kept empty).
	Kind string `json:"kind"`
	Kept int64  `json:"kept_bytes,omitempty"`
	Size int64  `json:"size,omitempty"`
	// Lost says what was lost, as RepairedXattr's value.
	Lost string `json:"lost"`
}

// RepairSnapshots rewrites every snapshot that uses data the repository
// has lost: chunks not in the index (a pack gone, `repair packs` could not
// salvage them) or served only from a quarantined (damaged) copy, and
// directory listings that cannot be read. The repaired snapshot keeps the
// original's time, host and sources, gains the RepairedTag, and differs in
// the damaged paths only: a file that lost a chunk is kept truncated to the
// bytes before its first lost chunk (never zero-filled), a directory whose
// listing is lost is kept empty, each marked with RepairedXattr and named
// in the source's warnings and in the result. A snapshot none of whose
// sources could be kept is empty and gets no repaired snapshot. With
// forget the originals are removed once the repaired ones are committed,
// and the empty ones too.
//
// Run `check --read-data` first: only damage that a check or a read has
// quarantined is known.
func (r *Repository) RepairSnapshots(ctx context.Context, dryRun, forget bool) (*RepairSnapshotsResult, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	res := &RepairSnapshotsResult{DryRun: dryRun, Snapshots: []SnapshotRepair{}, Forgotten: []index.ID{}}
	quarantined, err := r.idx.QuarantinedInUse()
	if err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	fx := &treeFixer{r: r, ctx: ctx, quarantined: quarantined, memo: map[index.ID]*treeFix{},
		now: r.opts.Now().UTC(), dryRun: dryRun}
	if !dryRun {
		if fx.saver, err = newBlobSaver(r); err != nil {
			return nil, err
		}
	}
	type pending struct {
		orig *Snapshot
		m    *Manifest
		rep  int // index in res.Snapshots
	}
	var toWrite []pending
	var toForget []index.ID
	for _, s := range snaps {
		if err := ctx.Err(); err != nil {
			fx.abort()
			return nil, err
		}
		m, sr, err := fx.repairSnapshot(s)
		if err != nil {
			fx.abort()
			return nil, err
		}
		if sr == nil {
			continue
		}
		res.Snapshots = append(res.Snapshots, *sr)
		if m != nil {
			toWrite = append(toWrite, pending{s, m, len(res.Snapshots) - 1})
		}
		if forget {
			toForget = append(toForget, s.ID)
		}
	}
	if dryRun {
		return res, nil
	}
	// Trees first, durable and indexed; then each manifest.
	if err := fx.saver.Flush(); err != nil {
		return nil, err
	}
	for _, p := range toWrite {
		id, err := r.writeManifest(p.m)
		if err != nil {
			return res, err
		}
		res.Snapshots[p.rep].Repaired = id
	}
	if len(toForget) > 0 {
		if err := r.forgetLocked(ctx, toForget); err != nil {
			return res, err
		}
		res.Forgotten = toForget
	}
	return res, nil
}

// treeFixer rewrites damaged trees, once each: snapshots share subtrees.
type treeFixer struct {
	r           *Repository
	ctx         context.Context
	quarantined map[index.ID]index.Damaged
	saver       *blobSaver // nil in a dry run
	memo        map[index.ID]*treeFix
	now         time.Time
	dryRun      bool
}

// treeFix is what fixing one tree gave.
type treeFix struct {
	id index.ID
	// lost: the listing itself could not be read (id is an empty tree).
	lost  string
	paths []RepairedPath // relative to the tree
}

func (f *treeFixer) abort() {
	if f.saver != nil {
		f.saver.Abort()
	}
}

// repairSnapshot returns the repaired manifest of s (nil when nothing is
// damaged, or when it would be empty) and what changed (nil: nothing).
func (f *treeFixer) repairSnapshot(s *Snapshot) (*Manifest, *SnapshotRepair, error) {
	m := s.Manifest
	m.Sources = slices.Clone(s.Sources)
	sr := &SnapshotRepair{Snapshot: s.ID, Time: s.Time, Paths: []RepairedPath{}}
	kept := 0
	for i := range m.Sources {
		src := &m.Sources[i]
		fix, err := f.fixTree(src.Tree)
		if err != nil {
			return nil, nil, err
		}
		if fix.lost == "" {
			kept++
		}
		if fix.id == src.Tree && fix.lost == "" {
			continue
		}
		src.Tree = fix.id
		warns := slices.Clone(src.Warnings)
		if fix.lost != "" {
			src.Root.Xattrs = withXattr(src.Root.Xattrs, fix.lost)
			sr.Paths = append(sr.Paths, RepairedPath{Path: src.Label + "/", Kind: "directory", Lost: fix.lost})
			warns = append(warns, "repair snapshots: "+src.Label+"/: "+fix.lost)
		}
		for _, p := range fix.paths {
			p.Path = src.Label + "/" + p.Path
			sr.Paths = append(sr.Paths, p)
			if len(warns) < 200 {
				warns = append(warns, "repair snapshots: "+p.Path+": "+p.Lost)
			}
		}
		src.Warnings = warns
	}
	if len(sr.Paths) == 0 {
		return nil, nil, nil
	}
	if kept == 0 {
		sr.Empty = true
		return nil, sr, nil
	}
	if !slices.Contains(m.Tags, RepairedTag) {
		m.Tags = append(slices.Clone(m.Tags), RepairedTag)
	}
	return &m, sr, nil
}

// lostChunk says why chunk id cannot be read, "" if it can (as far as the
// index and the quarantine know).
func (f *treeFixer) lostChunk(id index.ID) (string, error) {
	if q, ok := f.quarantined[id]; ok {
		return fmt.Sprintf("chunk %s damaged in pack %s (%s)", id.Short(), q.Pack.Short(), q.Reason), nil
	}
	has, err := f.r.idx.HasBlob(id)
	if err != nil {
		return "", err
	}
	if !has {
		return fmt.Sprintf("chunk %s missing", id.Short()), nil
	}
	return "", nil
}

// fixTree returns tree id with every damaged entry repaired.
func (f *treeFixer) fixTree(id index.ID) (*treeFix, error) {
	if fx, ok := f.memo[id]; ok {
		return fx, nil
	}
	fx, err := f.fixTreeUncached(id)
	if err == nil {
		f.memo[id] = fx
	}
	return fx, err
}

func (f *treeFixer) fixTreeUncached(id index.ID) (*treeFix, error) {
	// Known lost first: a listing decoded before the damage may still be
	// in the cache, but a snapshot that names it cannot be restored.
	why, err := f.lostChunk(id)
	if err != nil {
		return nil, err
	}
	var t *Tree
	if why != "" {
		err = errors.New(why)
	} else if t, err = f.r.LoadTree(f.ctx, id); err == nil {
		for _, p := range t.Parts {
			if why, err = f.lostChunk(p.ID); err != nil {
				return nil, err
			} else if why != "" {
				err = errors.New("part " + why)
				break
			}
		}
	} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, index.ErrCorrupt) && f.ctx.Err() == nil {
		return nil, err // the disk, not the data: change nothing
	}
	if err != nil {
		if f.ctx.Err() != nil {
			return nil, f.ctx.Err()
		}
		lostErr := err
		empty, err := f.save(&Tree{})
		if err != nil {
			return nil, err
		}
		return &treeFix{id: empty, lost: OneLine(fmt.Sprintf("directory listing lost (tree %s: %v); kept empty by repair snapshots at %s",
			id.Short(), lostErr, f.now.Format(time.RFC3339)), 300)}, nil
	}
	fx := &treeFix{id: id}
	var nodes []Node // copy on first change
	for i := range t.Nodes {
		n := t.Nodes[i]
		changed := false
		switch n.Type {
		case TypeDir:
			sub, err := f.fixTree(n.Subtree)
			if err != nil {
				return nil, err
			}
			if sub.id != n.Subtree || sub.lost != "" {
				changed = true
				n.Subtree = sub.id
				if sub.lost != "" {
					n.Xattrs = withXattr(n.Xattrs, sub.lost)
					fx.paths = append(fx.paths, RepairedPath{Path: n.Name + "/", Kind: "directory", Lost: sub.lost})
				}
				for _, p := range sub.paths {
					p.Path = n.Name + "/" + p.Path
					fx.paths = append(fx.paths, p)
				}
			}
		case TypeFile:
			for j, c := range n.Content {
				why, err := f.lostChunk(c.ID)
				if err != nil {
					return nil, err
				}
				if why == "" {
					continue
				}
				lost := OneLine(fmt.Sprintf("bytes %d-%d of %d lost (%s); kept the first %d bytes (repair snapshots at %s)",
					c.Offset, n.Size, n.Size, why, c.Offset, f.now.Format(time.RFC3339)), 300)
				fx.paths = append(fx.paths, RepairedPath{Path: n.Name, Kind: "file", Kept: c.Offset, Size: n.Size, Lost: lost})
				n.Content = slices.Clone(n.Content[:j])
				n.Size = c.Offset
				n.Xattrs = withXattr(n.Xattrs, lost)
				changed = true
				break
			}
		}
		if changed && nodes == nil {
			nodes = slices.Clone(t.Nodes[:i])
		}
		if nodes != nil {
			nodes = append(nodes, n)
		}
	}
	if nodes == nil {
		return fx, nil
	}
	if fx.id, err = f.save(&Tree{Nodes: nodes}); err != nil {
		return nil, err
	}
	return fx, nil
}

// save stores a tree (split like the archiver's when large) and returns
// its id; in a dry run it only computes the id.
func (f *treeFixer) save(t *Tree) (index.ID, error) {
	b := newTreeBuilder(f.ctx, f.saveBlob)
	for i := range t.Nodes {
		if err := b.add(&t.Nodes[i], nil, nil); err != nil {
			return index.ID{}, err
		}
	}
	return b.finish()
}

func (f *treeFixer) saveBlob(b []byte) (index.ID, error) {
	id := f.r.blobID(b)
	if f.dryRun {
		return id, nil
	}
	isNew, err := f.saver.Reserve(id)
	if err != nil || !isNew {
		return id, err
	}
	enc := codec.NewEncoder(codec.Options{})
	out, cid, err := enc.Encode(nil, b)
	if err != nil {
		return id, fmt.Errorf("snapshot: encode tree: %w", err)
	}
	return id, f.saver.Add(index.TreeBlob, uint8(cid), id, out, len(b))
}

// withXattr returns xs with RepairedXattr set to v, in name order.
func withXattr(xs []Xattr, v string) []Xattr {
	out := make([]Xattr, 0, len(xs)+1)
	for _, x := range xs {
		if x.Name != RepairedXattr {
			out = append(out, x)
		}
	}
	out = append(out, Xattr{Name: RepairedXattr, Value: []byte(v)})
	slices.SortFunc(out, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out
}
