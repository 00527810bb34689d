package snapshot

// The file-change cache maps label + path to the node recorded when the
// file was last read. A file whose size, mtime, ctime, inode and device are
// unchanged is not read again: its chunk list is reused, after checking
// that every chunk is still in the index (prune may have removed some) and
// not served from a quarantined copy (see index/quarantine.go).

func (a *archiver) cachedContent(key []byte, n *Node) ([]ChunkRef, bool) {
	if a.readAll { // Request.ReadAll: trust nothing, look nothing up
		return nil, false
	}
	v, err := a.r.idx.FileCache().Get(key)
	if err != nil {
		return nil, false
	}
	t, err := DecodeTree(v)
	if err != nil || len(t.Nodes) != 1 {
		return nil, false
	}
	c := &t.Nodes[0]
	if c.Size != n.Size || c.Mtime != n.Mtime || c.Ctime != n.Ctime || c.Inode != n.Inode || c.Dev != n.Dev || c.Type != TypeFile {
		return nil, false
	}
	for _, ch := range c.Content {
		if a.saver.damaged(ch.ID) {
			return nil, false // its only copy is damaged: read the file again
		}
		if ok, err := a.r.idx.HasBlob(ch.ID); err != nil || !ok {
			return nil, false
		}
	}
	return c.Content, true
}

func (a *archiver) queueCacheEntry(key []byte, n *Node) {
	entry := *n
	entry.Name = "f"
	entry.Xattrs = nil
	v := (&Tree{Nodes: []Node{entry}}).Encode()
	a.mu.Lock()
	a.cacheBatch = append(a.cacheBatch, [2][]byte{key, v})
	a.mu.Unlock()
}

// writeFileCache stores the queued entries. It runs after the packs they
// refer to are committed, so a cache entry never points at unindexed data.
func (a *archiver) writeFileCache() error {
	a.mu.Lock()
	entries := a.cacheBatch
	a.cacheBatch = nil
	a.mu.Unlock()
	return a.r.idx.FileCache().Put(entries)
}

// ClearFileCache drops every file-change cache entry (after prune).
func (r *Repository) ClearFileCache() error {
	return r.idx.FileCache().Clear()
}
