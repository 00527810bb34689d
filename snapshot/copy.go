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
//     only what it lacks is read and transferred. Those blobs are read
//     and verified copyReads at once, and stored through the target's
//     blob saver, which PUTs a store's packs in parallel.
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

// copyReads bounds the blobs a copy reads and verifies at once. Each is
// a ranged GET from a bucket (or a pread from a directory): one after
// another, a copy out of S3 waited a round trip per chunk. Each read in
// flight holds one stored blob (at most the chunker's maximum chunk).
const copyReads = 8

type copier struct {
	src, dst *Repository
	ctx      context.Context
	res      *CopyResult
	// seen is every blob this run has dealt with (copied, or found in
	// the target), and every tree it has walked.
	seen map[index.ID]bool
	// saver stores the current snapshot's blobs in the target: its
	// packs are PUT in parallel to a store (blobSaver).
	saver *blobSaver
	// reads are the blobs being read from the source, oldest first;
	// they are added to the target in this order, so a tree still
	// follows its children.
	reads    []*copyRead
	cur      index.ID
	progress CopyProgress
}

// copyRead is one blob read from the source by its own goroutine; done
// is closed once stored or err is set.
type copyRead struct {
	id     index.ID
	ref    index.BlobRef
	stored []byte
	err    error
	done   chan struct{}
}

func (c *copier) snapshot(s *Snapshot) error {
	c.cur = s.ID
	manifest, err := c.src.idx.SnapshotManifest(s.ID)
	if err != nil {
		return fmt.Errorf("snapshot: copy %s: %w", s.ID.Short(), err)
	}
	if c.src.idx.Keys.BlobID(manifest) != s.ID {
		return fmt.Errorf("snapshot: copy %s: the manifest does not hash to its id: %w", s.ID.Short(), ErrCorrupt)
	}
	if c.saver, err = newBlobSaver(c.dst); err != nil {
		return err
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

// blob transfers one blob unless the target has it: read as stored and
// verified (in the background, copyReads at once), then appended to the
// target's current pack.
func (c *copier) blob(id index.ID) error {
	if c.seen[id] {
		return nil
	}
	if err := c.ctx.Err(); err != nil {
		return err
	}
	isNew, err := c.saver.Reserve(id)
	if err != nil {
		return err
	}
	if !isNew {
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
	c.seen[id] = true
	if len(c.reads) == copyReads {
		if err := c.addOldest(); err != nil {
			return err
		}
	}
	rd := &copyRead{id: id, ref: ref, done: make(chan struct{})}
	c.reads = append(c.reads, rd)
	go func() {
		defer close(rd.done)
		rd.stored, rd.err = c.src.idx.ReadStored(rd.ref, nil)
		if rd.err == nil {
			rd.err = c.src.verifyStored(rd.ref, rd.stored)
		}
	}()
	return nil
}

// addOldest waits for the oldest read and adds its blob to the target.
func (c *copier) addOldest() error {
	rd := c.reads[0]
	<-rd.done
	c.reads[0] = nil
	c.reads = c.reads[1:]
	if rd.err != nil {
		return fmt.Errorf("snapshot: copy %s: %w", c.cur.Short(), rd.err)
	}
	if err := c.saver.Add(rd.ref.Type, rd.ref.Codec, rd.id, rd.stored, int(rd.ref.RawLength)); err != nil {
		return err
	}
	c.res.Blobs++
	c.res.Bytes += int64(len(rd.stored))
	if c.progress != nil {
		c.progress(c.cur, c.res.Blobs, c.res.Bytes)
	}
	return nil
}

// flush adds the blobs still being read, then finishes the snapshot's
// packs and commits them to the target's index.
func (c *copier) flush() error {
	for len(c.reads) > 0 {
		if err := c.addOldest(); err != nil {
			return err
		}
	}
	saver := c.saver
	c.saver = nil
	if err := saver.Flush(); err != nil {
		return err
	}
	c.res.Packs += saver.packs
	return nil
}

// abort waits for the reads in flight (they use the source) and drops
// the unfinished packs (nothing in them was indexed).
func (c *copier) abort() {
	for _, rd := range c.reads {
		<-rd.done
	}
	c.reads = nil
	if c.saver != nil {
		c.saver.Abort()
		c.saver = nil
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
	if err := pw.AddEncoded(index.SnapshotBlob, 0, id, manifest, len(manifest)); err != nil {
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
