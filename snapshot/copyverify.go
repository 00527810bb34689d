package snapshot

// Verifying a copy (`citadelfs migrate`): a snapshot of one repository
// against its copy in another, by what a restore would give, not by ids
// (a re-chunked copy shares none with its source).
//
// Decisions:
//   - Every source of the manifest must be there under its label with
//     the same paths and root metadata, and the same time, host and tags.
//   - The trees are walked side by side: the same names in the same
//     order, every node's metadata equal (type, mode, owner, size,
//     times, inode, device, link count, rdev, target, xattrs), and each
//     regular file's data extents (its holes) and bytes equal. The bytes
//     of both sides are read through the verifying reader, so a damaged
//     chunk on either side is ErrCorrupt too.
//   - Pairs already compared in this run (trees by their two ids, files
//     by their two chunk lists) are not compared again: the unchanged
//     files of the next snapshot cost a map lookup.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"citadelfs/index"
)

// ErrCopyDiffers: a copy does not restore to what its source does.
var ErrCopyDiffers = fmt.Errorf("the copy differs from its source: %w", ErrCorrupt)

// VerifyResult counts what VerifyCopy compared.
type VerifyResult struct {
	Snapshots int   `json:"snapshots"`
	Files     int64 `json:"files"`
	Bytes     int64 `json:"bytes"` // file bytes read and compared on each side
}

// CopyVerifier compares snapshots of one repository with their copies in
// another; it remembers what it compared, across calls.
type CopyVerifier struct {
	src, dst *Repository
	res      VerifyResult
	trees    map[[2]index.ID]bool
	files    map[[2][32]byte]bool
	bufA     []byte
	bufB     []byte
}

// NewCopyVerifier returns a verifier of copies from src into dst.
func NewCopyVerifier(src, dst *Repository) *CopyVerifier {
	return &CopyVerifier{src: src, dst: dst, trees: map[[2]index.ID]bool{}, files: map[[2][32]byte]bool{},
		bufA: make([]byte, 1<<20), bufB: make([]byte, 1<<20)}
}

// Result is what the verifier has compared so far.
func (v *CopyVerifier) Result() VerifyResult { return v.res }

// Verify compares snapshot s of the source with its copy c in the target.
func (v *CopyVerifier) Verify(ctx context.Context, s, c *Snapshot) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("snapshot: copy %s of %s: %s: %w", c.ID.Short(), s.ID.Short(), fmt.Sprintf(format, args...), ErrCopyDiffers)
	}
	if !s.Time.Equal(c.Time) || s.Host != c.Host || !slices.Equal(s.Tags, c.Tags) || len(s.Sources) != len(c.Sources) {
		return fail("time, host, tags or sources differ")
	}
	for i := range s.Sources {
		a, b := &s.Sources[i], &c.Sources[i]
		if a.Label != b.Label || a.Path != b.Path || !slices.Equal(a.Paths, b.Paths) {
			return fail("source %d is %q at %s, not %q at %s", i, b.Label, b.Path, a.Label, a.Path)
		}
		ra, rb := a.RootNode(), b.RootNode()
		if !sameNodeMeta(&ra, &rb) {
			return fail("source %s: the root's metadata differs", a.Label)
		}
		if err := v.tree(ctx, a.Label, a.Tree, b.Tree); err != nil {
			if errors.Is(err, ErrCopyDiffers) || !errors.Is(err, ErrCorrupt) {
				return fmt.Errorf("snapshot: copy %s of %s: %w", c.ID.Short(), s.ID.Short(), err)
			}
			return err
		}
	}
	v.res.Snapshots++
	return nil
}

func (v *CopyVerifier) tree(ctx context.Context, path string, a, b index.ID) error {
	key := [2]index.ID{a, b}
	if v.trees[key] {
		return nil
	}
	ta, err := v.src.LoadTree(ctx, a)
	if err != nil {
		return fmt.Errorf("%s: source: %w", path, err)
	}
	tb, err := v.dst.LoadTree(ctx, b)
	if err != nil {
		return fmt.Errorf("%s: copy: %w", path, err)
	}
	if len(ta.Nodes) != len(tb.Nodes) {
		return fmt.Errorf("%s: %d entries in the copy, %d in the source: %w", path, len(tb.Nodes), len(ta.Nodes), ErrCopyDiffers)
	}
	for i := range ta.Nodes {
		na, nb := &ta.Nodes[i], &tb.Nodes[i]
		p := path + "/" + na.Name
		if !sameNodeMeta(na, nb) {
			return fmt.Errorf("%s: the metadata differs: %w", p, ErrCopyDiffers)
		}
		switch na.Type {
		case TypeDir:
			if err := v.tree(ctx, p, na.Subtree, nb.Subtree); err != nil {
				return err
			}
		case TypeFile:
			if err := v.file(ctx, p, na, nb); err != nil {
				return err
			}
		}
	}
	v.trees[key] = true
	return nil
}

// file compares a regular file's holes and bytes.
func (v *CopyVerifier) file(ctx context.Context, path string, a, b *Node) error {
	key := [2][32]byte{contentKey(a), contentKey(b)}
	if v.files[key] {
		return nil
	}
	fa, fb := v.src.OpenFile(a), v.dst.OpenFile(b)
	if !slices.Equal(fa.Extents(), fb.Extents()) {
		return fmt.Errorf("%s: the data extents (holes) differ: %w", path, ErrCopyDiffers)
	}
	for _, ext := range fa.Extents() {
		for off, end := ext[0], ext[0]+ext[1]; off < end; {
			n := int(min(int64(len(v.bufA)), end-off))
			ka, err := fa.ReadAt(ctx, v.bufA[:n], off)
			if err != nil && err != io.EOF {
				return fmt.Errorf("%s: source: %w", path, err)
			}
			kb, err := fb.ReadAt(ctx, v.bufB[:n], off)
			if err != nil && err != io.EOF {
				return fmt.Errorf("%s: copy: %w", path, err)
			}
			if ka != n || kb != n || !bytes.Equal(v.bufA[:n], v.bufB[:n]) {
				return fmt.Errorf("%s: the bytes at %d differ: %w", path, off, ErrCopyDiffers)
			}
			off += int64(n)
			v.res.Bytes += int64(n)
		}
	}
	v.res.Files++
	if len(v.files) < rechunkMemoRefs {
		v.files[key] = true
	}
	return nil
}

// sameNodeMeta compares everything of two nodes but where their data
// lives (Content, Subtree).
func sameNodeMeta(a, b *Node) bool {
	if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Size != b.Size ||
		a.Mtime != b.Mtime || a.Atime != b.Atime || a.Ctime != b.Ctime || a.Inode != b.Inode || a.Dev != b.Dev ||
		a.Nlink != b.Nlink || a.Rdev != b.Rdev || a.Target != b.Target || len(a.Xattrs) != len(b.Xattrs) {
		return false
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || !bytes.Equal(a.Xattrs[i].Value, b.Xattrs[i].Value) {
			return false
		}
	}
	return true
}

// FindCopy returns the snapshot of r that is s or a copy of it (the
// snapshot copySeen would skip s for), or ErrNoSnapshot.
func (r *Repository) FindCopy(s *Snapshot) (*Snapshot, error) {
	snaps, err := r.Snapshots()
	if err != nil {
		return nil, err
	}
	for _, d := range snaps {
		seen := &copySeen{ids: map[index.ID]bool{}, from: map[index.ID]bool{}}
		seen.add(d)
		if seen.has(s) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("snapshot: no copy of %s in %s: %w", s.ID.Short(), r.Dir(), ErrNoSnapshot)
}
