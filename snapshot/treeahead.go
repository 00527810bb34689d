package snapshot

import (
	"context"
	"sync"

	"citadelfs/index"
)

// Trees loaded ahead of a walk. A restore walks a snapshot depth first in
// one goroutine, and a cp -a or find out of the mount one directory at a
// time: from a repository in a store each directory was one ranged GET
// round trip after another, so a tree of many small directories (a
// configs source) took longer than its bytes. LoadTreeAhead starts
// loading the subtrees of the directory it loads, a few at once, and
// LoadTree joins a load in flight.

// subtreesAheadMax bounds the subtrees loaded ahead (queued or in
// flight), and subtreeFetches the fetches among them at once; trees are
// small, and a walk visits what it is handed here.
const (
	subtreesAheadMax = 64
	subtreeFetches   = 8
)

type treeAhead struct {
	mu      sync.Mutex
	pending map[index.ID]*treeLoad
	slots   chan struct{}
	wg      sync.WaitGroup
	closed  bool
}

// treeLoad is a subtree being loaded ahead.
type treeLoad struct {
	done chan struct{}
	t    *Tree
	err  error
}

// LoadTreeAhead is LoadTree, and for a repository in a store it starts
// loading the subtrees of the directories in the tree, for the walk that
// comes next (the mount's directory listings, a restore).
func (r *Repository) LoadTreeAhead(ctx context.Context, id index.ID) (*Tree, error) {
	t, err := r.LoadTree(ctx, id)
	if err == nil && r.idx.IsRemote() {
		r.subtreesAhead(t)
	}
	return t, err
}

func (r *Repository) subtreesAhead(t *Tree) {
	a := &r.treeAhead
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	if a.pending == nil {
		a.pending, a.slots = map[index.ID]*treeLoad{}, make(chan struct{}, subtreeFetches)
	}
	for i := range t.Nodes {
		id := t.Nodes[i].Subtree
		if t.Nodes[i].Type != TypeDir || id.IsZero() || a.pending[id] != nil || r.cache.hasTree(id) {
			continue
		}
		if len(a.pending) >= subtreesAheadMax {
			return
		}
		l := &treeLoad{done: make(chan struct{})}
		a.pending[id] = l
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.slots <- struct{}{}
			// Not bound to a caller's context: the walk that wants it
			// may come from another one, and the load is short.
			l.t, l.err = r.loadTreeNow(context.Background(), id)
			<-a.slots
			a.mu.Lock()
			delete(a.pending, id) // after loadTreeNow cached it
			a.mu.Unlock()
			close(l.done)
		}()
	}
}

// loading returns the load of id in flight, if there is one.
func (a *treeAhead) loading(id index.ID) *treeLoad {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending[id]
}

// stop starts no more loads and waits for those in flight (Close: they
// use the index).
func (a *treeAhead) stop() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.wg.Wait()
}
