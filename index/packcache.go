package index

import (
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// packFiles keeps a bounded set of open pack files for pread.
type packFiles struct {
	dir  string
	max  int
	mu   sync.Mutex
	open map[ID]*packFile
	tick uint64
}

type packFile struct {
	f      *os.File
	direct *os.File // the same file opened O_DIRECT; nil where refused
	refs   int
	used   uint64
	dead   bool
}

func newPackFiles(dir string, max int) *packFiles {
	return &packFiles{dir: dir, max: max, open: map[ID]*packFile{}}
}

func (p *packFiles) acquire(id ID) (*packFile, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tick++
	pf, ok := p.open[id]
	if !ok {
		f, err := os.Open(PackPath(p.dir, id))
		if err != nil {
			return nil, nil, err
		}
		pf = &packFile{f: f}
		if fd, err := unix.Open(f.Name(), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_DIRECT, 0); err == nil {
			pf.direct = os.NewFile(uintptr(fd), f.Name())
		}
		p.open[id] = pf
	}
	pf.refs++
	pf.used = p.tick
	// Only now: the new file is the most recently used, so it is never
	// the one evicted (it was, with used still 0, and the caller got a
	// closed file: false "corrupt data" once more than max packs were
	// read).
	p.evictLocked()
	return pf, func() {
		p.mu.Lock()
		pf.refs--
		if pf.dead && pf.refs == 0 {
			pf.close()
		}
		p.mu.Unlock()
	}, nil
}

func (pf *packFile) close() {
	pf.f.Close()
	if pf.direct != nil {
		pf.direct.Close()
	}
}

func (p *packFiles) evictLocked() {
	for len(p.open) > p.max {
		var oldID ID
		var old *packFile
		for id, pf := range p.open {
			if old == nil || pf.used < old.used {
				oldID, old = id, pf
			}
		}
		p.dropLocked(oldID, old)
	}
}

func (p *packFiles) dropLocked(id ID, pf *packFile) {
	delete(p.open, id)
	pf.dead = true
	if pf.refs == 0 {
		pf.close()
	}
}

func (p *packFiles) drop(id ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pf, ok := p.open[id]; ok {
		p.dropLocked(id, pf)
	}
}

func (p *packFiles) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pf := range p.open {
		p.dropLocked(id, pf)
	}
}
