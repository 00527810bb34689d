package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/disk"
)

// statfser measures file systems without ever hanging the caller: statfs on
// a dead NFS server or a wedged FUSE mount blocks in the kernel, and no
// context can interrupt it. Each call runs in its own goroutine and is
// abandoned after the timeout; the path is then marked stuck and not tried
// again until the abandoned call returns, so a hung mount costs one blocked
// goroutine, not one per cycle (node_exporter's filesystem collector does
// the same).
type statfser struct {
	timeout time.Duration
	statfs  func(path string) (*disk.UsageStat, error) // disk.Usage; tests block it
	mu      sync.Mutex
	stuck   map[string]bool
}

func newStatfser(timeout time.Duration) *statfser {
	return &statfser{timeout: timeout, statfs: disk.Usage, stuck: map[string]bool{}}
}

// errAbsent marks a path that does not exist.
var errAbsent = errors.New("monitor: path does not exist")

func (s *statfser) usage(path string) (*FSUsage, error) {
	s.mu.Lock()
	if s.stuck[path] {
		s.mu.Unlock()
		return nil, fmt.Errorf("monitor: statfs %s: still blocked from an earlier cycle (hung mount?)", path)
	}
	s.mu.Unlock()

	type result struct {
		u   *disk.UsageStat
		err error
	}
	ch := make(chan result, 1)
	go func() {
		u, err := s.statfs(path)
		ch <- result{u, err}
		s.mu.Lock()
		delete(s.stuck, path)
		s.mu.Unlock()
	}()
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-ch:
	case <-timer.C:
		s.mu.Lock()
		s.stuck[path] = true
		s.mu.Unlock()
		// The call may have returned between the timer and the lock, after
		// its own delete: take its result and unmark the path.
		select {
		case r = <-ch:
			s.mu.Lock()
			delete(s.stuck, path)
			s.mu.Unlock()
		default:
			return nil, fmt.Errorf("monitor: statfs %s: no answer within %s (hung mount?)", path, s.timeout)
		}
	}
	if errors.Is(r.err, fs.ErrNotExist) {
		return nil, errAbsent
	}
	if r.err != nil {
		return nil, fmt.Errorf("monitor: statfs %s: %w", path, r.err)
	}
	return fsUsage(r.u), nil
}

func fsUsage(u *disk.UsageStat) *FSUsage {
	return &FSUsage{
		Total:       u.Total,
		Used:        u.Used,
		Free:        u.Total - min(u.Used, u.Total),
		Avail:       u.Free, // gopsutil's Free is f_bavail
		Files:       u.InodesTotal,
		FilesFree:   u.InodesFree,
		UsedPercent: u.UsedPercent,
	}
}
