package index

// FileCache is the typed store of the file-change cache, which snapshot
// owns: one entry per source file, keyed by its source's label and its
// path (label NUL path), whose value (the file's node as last read) only
// snapshot decodes. It is a cache: writes are not synced, and a lost or
// unreadable entry only means the file is read again.
type FileCache struct{ kv *KV }

// FileCache is the repository's file-change cache.
func (r *Repo) FileCache() FileCache { return FileCache{r.KV} }

// fileCacheBatch bounds the entries one Put commits in a batch.
const fileCacheBatch = 4096

// Key is the key of the entry of path in source label.
func (FileCache) Key(label, path string) []byte {
	return fileCacheKey(label + "\x00" + path)
}

// Get returns the entry at key (from Key); ErrNotFound if there is none.
func (c FileCache) Get(key []byte) ([]byte, error) { return c.kv.Get(key) }

// Put stores entries (key from Key, value), in batches of at most
// fileCacheBatch, unsynced.
func (c FileCache) Put(entries [][2][]byte) error {
	for len(entries) > 0 {
		n := min(len(entries), fileCacheBatch)
		b := c.kv.NewBatch()
		for _, e := range entries[:n] {
			b.Put(e[0], e[1])
		}
		if err := b.Commit(false); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// Clear drops every entry (after prune), synced.
func (c FileCache) Clear() error {
	p := fileCachePrefix()
	return c.kv.DeleteRange(p, PrefixEnd(p), true)
}
