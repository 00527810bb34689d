package chunker

import "sync"

var gearMu sync.Mutex

func gearCacheGet(seed uint64) (*[256]uint64, bool) {
	gearMu.Lock()
	defer gearMu.Unlock()
	t, ok := gearCache[seed]
	return t, ok
}

func gearCachePut(seed uint64, t *[256]uint64) {
	gearMu.Lock()
	defer gearMu.Unlock()
	gearCache[seed] = t
}
