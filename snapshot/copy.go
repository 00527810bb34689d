package snapshot

// Copy between repositories (`citadelfs copy --to REPO`): the 3-2-1 rule's
// second copy, from the backup disk to an S3 bucket or back.
//
// Decisions:
//   - Blobs are copied as stored (still compressed), after the one
//     verifier (decodeVerified) has decoded and hashed them: a damaged
//     source blob stops the copy with ErrCorrupt instead of being
//     spread to the second repository.
//   - Between repositories with the same keys (none, or one master key)
//     and chunker parameters, a snapshot keeps its id: its manifest
//     bytes are written unchanged, and its trees and chunks are the same
//     blobs, copied as stored (this file). Otherwise a chunk id in a
//     tree names nothing the target's chunker and id key would make, and
//     the copy re-chunks every file into new ids (recopy.go).
//   - Per blob, the target's index says whether it is already there;
//     only what it lacks is read and transferred.
//   - Order is the snapshot command's: data and tree packs first, each
//     committed to the target's index as it is finished, the manifest
//     last. A copy killed at any point leaves no snapshot in the target,
//     only packs, which the target's next open indexes (orphan packs of
//     a directory, the trailers of unknown packs in a store) and the
//     rerun then skips.
//   - Every tree is walked on every copy, even one the target has: a
//     kill may have left a tree's pack committed before a pack of its
//     children was, so a present tree does not prove its subtree is.

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"citadelfs/index"
)

// CopyResult counts what Copy did.
type CopyResult struct {
	Copied  []index.ID `json:"copied"`  // snapshots now in the target that were not
	Skipped []index.ID `json:"skipped"` // snapshots the target already had
	// Targets are the ids the Copied snapshots have in the target, in
	// the same order: the same ids when copied as stored, new ones when
	// Rechunked.
	Targets   []index.ID `json:"targets"`
	Rechunked bool       `json:"rechunked"`
	// PlainBytes are the file bytes a re-chunking copy read and cut again.
	PlainBytes int64 `json:"plain_bytes"`
	// Blobs and Bytes are the blobs transferred and their stored
	// (compressed) size; BlobsPresent those the target already had.
	Blobs        int64 `json:"blobs"`
	Bytes        int64 `json:"bytes"`
	BlobsPresent int64 `json:"blobs_present"`
	Packs        int   `json:"packs"`
}

// CopyProgress is called after every blob transferred.
type CopyProgress func(snap index.ID, blobs, bytes int64)

// CopiesAsStored says whether snapshots of r can be copied into dst with
// their ids, blobs as stored: the same keys (none, or the same master
// key) and the same chunker parameters (gear table included).
func (r *Repository) CopiesAsStored(dst *Repository) bool {
	return r.params == dst.params && r.idx.Config.Hash == dst.idx.Config.Hash && sameKeys(r.idx.Keys, dst.idx.Keys)
}

func sameKeys(a, b *index.Keys) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return bytes.Equal(a.Master(), b.Master())
}

// Copy copies snaps (snapshots of r) into dst: as stored when
// CopiesAsStored, else re-chunked (recopy.go). A snapshot dst already has,
// itself or as a copy, is skipped. progress may be nil.
func (r *Repository) Copy(ctx context.Context, dst *Repository, snaps []*Snapshot, progress CopyProgress) (*CopyResult, error) {
	dst.writeMu.Lock()
	defer dst.writeMu.Unlock()
	seen, err := newCopySeen(dst)
	if err != nil {
		return nil, err
	}
	if !r.CopiesAsStored(dst) {
		return r.rechunkCopy(ctx, dst, snaps, seen, progress)
	}
	c := &copier{src: r, dst: dst, ctx: ctx, res: &CopyResult{Copied: []index.ID{}, Targets: []index.ID{}, Skipped: []index.ID{}},
		seen: map[index.ID]bool{}, progress: progress}
	defer c.abort()
	for _, s := range snaps {
		if seen.has(s) {
			c.res.Skipped = append(c.res.Skipped, s.ID)
			continue
		}
		if err := c.snapshot(s); err != nil {
			return c.res, err
		}
		seen.add(s)
		c.res.Copied = append(c.res.Copied, s.ID)
		c.res.Targets = append(c.res.Targets, s.ID)
	}
	return c.res, nil
}

type copier struct {
	src, dst *Repository
	ctx      context.Context
	res      *CopyResult
	// seen is every blob this run has dealt with (copied, or found in
	// the target), and every tree it has walked.
	seen     map[index.ID]bool
	pw       *index.PackWriter
	cur      index.ID
	progress CopyProgress
}

func (c *copier) snapshot(s *Snapshot) error {
	c.cur = s.ID
	manifest, err := c.src.idx.SnapshotManifest(s.ID)
	if err != nil {
		return fmt.Errorf("snapshot: copy %s: %w", s.ID.Short(), err)
	}
	if index.Hash(manifest) != s.ID {
		return fmt.Errorf("snapshot: copy %s: the manifest does not hash to its id: %w", s.ID.Short(), ErrCorrupt)
	}
	for _, src := range s.Sources {
		if err := c.tree(src.Tree); err != nil {
			return err
		}
	}
	// Everything the snapshot refers to is durable and indexed in the
	// target before its manifest is written.
	if err := c.flush(); err != nil {
		return err
	}
	return c.dst.putManifest(s.ID, manifest)
}

// tree copies a directory's chunks and subtrees, then its part blobs and
// its own blob (children before parents, as a snapshot writes them).
func (c *copier) tree(id index.ID) error {
	if c.seen[id] {
		return nil
	}
	t, err := c.src.LoadTree(c.ctx, id)
	if err != nil {
		return fmt.Errorf("snapshot: copy: tree %s: %w", id.Short(), err)
	}
	for i := range t.Nodes {
		n := &t.Nodes[i]
		for _, ch := range n.Content {
			if err := c.blob(ch.ID); err != nil {
				return err
			}
		}
		if n.Type == TypeDir {
			if err := c.tree(n.Subtree); err != nil {
				return err
			}
		}
	}
	for _, p := range t.Parts {
		if err := c.blob(p.ID); err != nil {
			return err
		}
	}
	return c.blob(id)
}

// blob transfers one blob unless the target has it: read as stored,
// verified, appended to the current pack.
func (c *copier) blob(id index.ID) error {
	if c.seen[id] {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	has, err := c.dst.idx.HasBlob(id)
	if err != nil {
		return err
	}
	if has {
		c.seen[id] = true
		c.res.BlobsPresent++
		return nil
	}
	ref, err := c.src.idx.Lookup(id)
	if err != nil {
		if errors.Is(err, index.ErrBlobMissing) {
			return fmt.Errorf("snapshot: copy %s: chunk %s: %v: %w", c.cur.Short(), id.Short(), err, ErrCorrupt)
		}
		return err
	}
	stored, err := c.src.idx.ReadStored(ref, nil)
	if err == nil {
		err = c.src.verifyStored(ref, stored)
	}
	if err != nil {
		return fmt.Errorf("snapshot: copy %s: %w", c.cur.Short(), err)
	}
	if c.pw == nil {
		if c.pw, err = c.dst.idx.NewPackWriter(); err != nil {
			return err
		}
	}
	if err := c.pw.Add(ref.Type, ref.Codec, id, stored, int(ref.RawLength)); err != nil {
		return err
	}
	c.seen[id] = true
	c.res.Blobs++
	c.res.Bytes += int64(len(stored))
	if c.progress != nil {
		c.progress(c.cur, c.res.Blobs, c.res.Bytes)
	}
	if c.pw.Size() >= uint64(c.dst.opts.PackSize) {
		return c.flush()
	}
	return nil
}

// flush finishes the current pack and commits it to the target's index.
func (c *copier) flush() error {
	pw := c.pw
	if pw == nil {
		return nil
	}
	c.pw = nil
	id, entries, err := pw.Finish()
	if err != nil {
		return err
	}
	if err := c.dst.idx.CommitPack(id, entries, pw.Size()); err != nil {
		return err
	}
	c.res.Packs++
	return nil
}

// abort drops an unfinished pack (nothing in it was indexed).
func (c *copier) abort() {
	if c.pw != nil {
		c.pw.Abort()
		c.pw = nil
	}
}

// putManifest stores manifest bytes as they are, in a pack of their own,
// then commits the snapshot record (writeManifestPack for bytes that
// must keep their hash).
func (r *Repository) putManifest(id index.ID, manifest []byte) error {
	// A copy killed between the manifest's pack and its record left
	// the pack: only the record is missing.
	if has, err := r.idx.HasBlob(id); err != nil || has {
		if err != nil {
			return err
		}
		return r.commitManifestRecord(id, manifest)
	}
	pw, err := r.idx.NewPackWriter()
	if err != nil {
		return err
	}
	if err := pw.Add(index.SnapshotBlob, 0, id, manifest, len(manifest)); err != nil {
		pw.Abort()
		return err
	}
	pack, entries, err := pw.Finish()
	if err != nil {
		return err
	}
	if err := r.idx.CommitPack(pack, entries, pw.Size()); err != nil {
		return err
	}
	return r.commitManifestRecord(id, manifest)
}

func (r *Repository) commitManifestRecord(id index.ID, manifest []byte) error {
	if err := r.idx.PutSnapshot(id, manifest); err != nil {
		return fmt.Errorf("snapshot: copy: commit %s: %w", id.Short(), err)
	}
	r.changed()
	return nil
}
