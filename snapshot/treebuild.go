package snapshot

import (
	"context"
	"fmt"
	"hash/fnv"

	"citadelfs/index"
)

// Splitting large directories.
//
// A directory's listing is one tree blob while it encodes to at most
// treeSplitBytes. Past that it is stored as parts, each a listing of a run
// of entries, plus a part index (encodeTreeIndex) whose id is the
// directory's Subtree. So a directory of any size fits the blob limit, and
// the archiver holds at most one part's nodes, not the whole directory's.
//
// Part boundaries depend on the names alone (a part ends after an entry
// whose name hash has its low bits clear, once the part has
// treePartMinNodes entries), so adding one file to a huge log directory
// changes one part and the index, and the other parts deduplicate. A part
// that reaches treePartMaxBytes ends there regardless, which bounds a part
// whatever the names.
const (
	treeSplitBytes   = 4 << 20
	treePartMinNodes = 1024
	treePartMask     = 4096 - 1
	treePartMaxBytes = 8 << 20
	// treePendingMax bounds the entries waiting for their file to be read
	// before they can join a part.
	treePendingMax = 4096
)

// treeBuilder collects one directory's entries in name order and stores
// its tree. Entries are added as the walk meets them, each possibly still
// being read by a file worker (done closes when it finishes; skip then says
// whether it was dropped, e.g. it vanished).
type treeBuilder struct {
	ctx context.Context
	// save stores one encoded tree blob and returns its id.
	save func(b []byte) (index.ID, error)

	pending []pendingEntry
	// cur is the run of resolved entries not yet stored; curBytes their
	// encoded size. Before the directory is known to be large, cur holds
	// every entry so far.
	cur      []Node
	curBytes int
	split    bool
	parts    []TreePart
	scratch  []byte
}

type pendingEntry struct {
	node *Node
	done <-chan struct{}
	skip *bool
}

func newTreeBuilder(ctx context.Context, save func([]byte) (index.ID, error)) *treeBuilder {
	return &treeBuilder{ctx: ctx, save: save}
}

// add appends an entry; names must come in increasing order. done and skip
// are nil for an entry that needs no file worker.
func (b *treeBuilder) add(n *Node, done <-chan struct{}, skip *bool) error {
	b.pending = append(b.pending, pendingEntry{node: n, done: done, skip: skip})
	return b.drain(len(b.pending) > treePendingMax)
}

// drain moves finished entries, in order, from pending into parts. With
// wait it blocks until pending is back under its bound.
func (b *treeBuilder) drain(wait bool) error {
	i := 0
	for ; i < len(b.pending); i++ {
		e := b.pending[i]
		if e.done != nil {
			if wait && len(b.pending)-i > treePendingMax/2 {
				select {
				case <-e.done:
				case <-b.ctx.Done():
					return context.Cause(b.ctx)
				}
			} else {
				select {
				case <-e.done:
				default:
					goto out
				}
			}
		}
		if e.skip == nil || !*e.skip {
			if err := b.append(*e.node); err != nil {
				return err
			}
		}
	}
out:
	n := copy(b.pending, b.pending[i:])
	clear(b.pending[n:])
	b.pending = b.pending[:n]
	return nil
}

// append adds a resolved entry to the current run, storing a part where one
// ends.
func (b *treeBuilder) append(n Node) error {
	b.scratch = appendNode(b.scratch[:0], &n)
	b.cur = append(b.cur, n)
	b.curBytes += len(b.scratch)
	if !b.split {
		if b.curBytes <= treeSplitBytes {
			return nil
		}
		// Too big for one blob: cut what was held so far by the same rule
		// a split directory uses from its first entry.
		b.split = true
		held := b.cur
		b.cur, b.curBytes = nil, 0
		for _, h := range held {
			if err := b.append(h); err != nil {
				return err
			}
		}
		return nil
	}
	if b.curBytes >= treePartMaxBytes || (len(b.cur) >= treePartMinNodes && partEndsAfter(n.Name)) {
		return b.storePart()
	}
	return nil
}

func partEndsAfter(name string) bool {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()&treePartMask == 0
}

func (b *treeBuilder) storePart() error {
	t := &Tree{Nodes: b.cur}
	id, err := b.save(t.Encode())
	if err != nil {
		return err
	}
	b.parts = append(b.parts, TreePart{First: b.cur[0].Name, Count: uint64(len(b.cur)), ID: id})
	b.cur, b.curBytes = nil, 0
	return nil
}

// finish waits for the remaining entries and stores the directory: one
// listing, or its last part and the part index.
func (b *treeBuilder) finish() (index.ID, error) {
	for len(b.pending) > 0 {
		e := b.pending[0]
		if e.done != nil {
			select {
			case <-e.done:
			case <-b.ctx.Done():
				return index.ID{}, context.Cause(b.ctx)
			}
		}
		if err := b.drain(false); err != nil {
			return index.ID{}, err
		}
	}
	if !b.split {
		return b.save((&Tree{Nodes: b.cur}).Encode())
	}
	if len(b.cur) > 0 {
		if err := b.storePart(); err != nil {
			return index.ID{}, err
		}
	}
	ix := encodeTreeIndex(b.parts)
	if len(ix) > index.MaxBlobSize {
		return index.ID{}, fmt.Errorf("snapshot: directory of %d parts is too large for one part index", len(b.parts))
	}
	return b.save(ix)
}
