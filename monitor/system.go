package monitor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
)

// SystemSource reads the host's CPU, memory, load, file systems, disks and
// network. A part that cannot be read is left nil and named in
// SystemStats.Errors; an error return means nothing could be read.
type SystemSource interface {
	System(ctx context.Context) (*SystemStats, error)
}

// Defaults for HostSystemOptions, after node_exporter's: pseudo and
// read-only image file systems and kernel mount points say nothing about
// free space, partitions are counted in their disk, and FUSE mounts are
// skipped because statfs on them is answered by a user process (our own
// mount among them: the daemon never reads its own mount).
const (
	defaultMountExclude  = `^/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+|var/lib/containers/storage/.+|var/lib/kubelet/.+)($|/)`
	defaultFSTypeExclude = `^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|fuse\..*|fuse|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs|ramfs|nfsd)$`
	defaultDiskExclude   = `^(ram|zram|loop|fd|sr)\d+$|^(sd|vd|xvd|hd)[a-z]+\d+$|^nvme\d+n\d+p\d+$|^mmcblk\d+p\d+$`
	defaultNetExclude    = `^(lo|veth.*)$`
)

// HostSystemOptions configure NewHostSystem.
type HostSystemOptions struct {
	// Paths are the configured directories to measure.
	Paths []string
	// Clock stamps counter readings for rates (default time.Now).
	Clock func() time.Time
	// RateWindow is how long the first call waits between two counter
	// readings so that CPU percentages and I/O rates exist from the first
	// sample (default 1s; negative: no wait, the first sample has none).
	RateWindow time.Duration
	// StatfsTimeout bounds each file system measurement (default 2s).
	StatfsTimeout time.Duration
	// MountExclude, FSTypeExclude, DiskExclude and NetExclude are regular
	// expressions of mount points, file system types, block devices and
	// interfaces to leave out (defaults as node_exporter's).
	MountExclude, FSTypeExclude, DiskExclude, NetExclude string
}

func (o HostSystemOptions) withDefaults() HostSystemOptions {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RateWindow == 0 {
		o.RateWindow = time.Second
	}
	if o.StatfsTimeout == 0 {
		o.StatfsTimeout = 2 * time.Second
	}
	if o.MountExclude == "" {
		o.MountExclude = defaultMountExclude
	}
	if o.FSTypeExclude == "" {
		o.FSTypeExclude = defaultFSTypeExclude
	}
	if o.DiskExclude == "" {
		o.DiskExclude = defaultDiskExclude
	}
	if o.NetExclude == "" {
		o.NetExclude = defaultNetExclude
	}
	return o
}

// hostSystem is the SystemSource backed by gopsutil.
type hostSystem struct {
	o                                HostSystemOptions
	mountEx, fsTypeEx, diskEx, netEx *regexp.Regexp
	statfs                           *statfser
	mu                               sync.Mutex // one reading at a time; guards prev
	prev                             *counters
}

// counters are the cumulative readings rates are computed from.
type counters struct {
	at    time.Time
	cpu   []cpu.TimesStat
	disks map[string]disk.IOCountersStat
	nets  []net.IOCountersStat
	errs  []string
}

// NewHostSystem returns the gopsutil-backed SystemSource.
func NewHostSystem(o HostSystemOptions) (SystemSource, error) {
	o = o.withDefaults()
	h := &hostSystem{o: o, statfs: newStatfser(o.StatfsTimeout)}
	for _, x := range []struct {
		dst  **regexp.Regexp
		expr string
		what string
	}{{&h.mountEx, o.MountExclude, "mount"}, {&h.fsTypeEx, o.FSTypeExclude, "fstype"}, {&h.diskEx, o.DiskExclude, "disk"}, {&h.netEx, o.NetExclude, "network"}} {
		re, err := regexp.Compile(x.expr)
		if err != nil {
			return nil, fmt.Errorf("monitor: %s exclude pattern: %w", x.what, err)
		}
		*x.dst = re
	}
	return h, nil
}

func (h *hostSystem) readCounters(ctx context.Context) *counters {
	c := &counters{at: h.o.Clock()}
	var err error
	if c.cpu, err = cpu.TimesWithContext(ctx, true); err != nil {
		c.errs = append(c.errs, fmt.Sprintf("cpu: %v", err))
	}
	if c.disks, err = disk.IOCountersWithContext(ctx); err != nil {
		c.errs = append(c.errs, fmt.Sprintf("disk io: %v", err))
	}
	if c.nets, err = net.IOCountersWithContext(ctx, true); err != nil {
		c.errs = append(c.errs, fmt.Sprintf("network: %v", err))
	}
	return c
}

// System reads everything once. Rates cover the time since the previous
// call; the first call waits RateWindow to have a window at all.
func (h *hostSystem) System(ctx context.Context) (*SystemStats, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.readCounters(ctx)
	prev := h.prev
	if prev == nil && h.o.RateWindow > 0 {
		t := time.NewTimer(h.o.RateWindow)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("monitor: system: %w", ctx.Err())
		case <-t.C:
		}
		prev, cur = cur, h.readCounters(ctx)
	}
	h.prev = cur

	st := &SystemStats{Errors: cur.errs, Paths: []PathUsage{}, Mounts: []MountUsage{}}
	var window float64
	if prev != nil {
		window = cur.at.Sub(prev.at).Seconds()
	}
	if window > 0 {
		st.RateSeconds = window
	}
	if cur.cpu != nil {
		st.CPU = cpuStats(prev, cur)
	}
	st.Disks = h.diskIO(prev, cur, window)
	st.Network = h.netIO(prev, cur, window)

	if l, err := load.AvgWithContext(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("load: %v", err))
	} else {
		st.Load = &LoadStats{Load1: l.Load1, Load5: l.Load5, Load15: l.Load15}
	}
	if v, err := mem.VirtualMemoryWithContext(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("memory: %v", err))
	} else if v.Total > 0 {
		st.Memory = &MemoryStats{
			Total: v.Total, Available: v.Available, Free: v.Free, Cached: v.Cached, Buffers: v.Buffers,
			UsedPercent: float64(v.Total-min(v.Available, v.Total)) / float64(v.Total) * 100,
		}
	}
	if sw, err := mem.SwapMemoryWithContext(ctx); err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("swap: %v", err))
	} else {
		st.Swap = &SwapStats{Total: sw.Total, Free: sw.Free, UsedPercent: sw.UsedPercent}
	}

	parts, err := disk.PartitionsWithContext(ctx, true)
	if err != nil {
		st.Errors = append(st.Errors, fmt.Sprintf("mounts: %v", err))
	}
	st.Mounts = h.mounts(parts)
	st.Paths = h.paths(parts)

	if st.CPU == nil && st.Memory == nil && st.Load == nil && len(st.Mounts) == 0 {
		return nil, fmt.Errorf("monitor: system: nothing readable: %s", strings.Join(st.Errors, "; "))
	}
	return st, nil
}

func cpuStats(prev, cur *counters) *CPUStats {
	c := &CPUStats{Cores: len(cur.cpu), PerCore: []float64{}}
	for _, t := range cur.cpu {
		c.Seconds = append(c.Seconds, CPUSeconds{
			User: t.User, Nice: t.Nice, System: t.System, Idle: t.Idle,
			Iowait: t.Iowait, IRQ: t.Irq, SoftIRQ: t.Softirq, Steal: t.Steal,
		})
	}
	if prev == nil || prev.cpu == nil {
		return nil
	}
	before := make(map[string]cpu.TimesStat, len(prev.cpu))
	for _, t := range prev.cpu {
		before[t.CPU] = t
	}
	var busySum, totalSum float64
	for _, t := range cur.cpu {
		p, ok := before[t.CPU]
		if !ok {
			c.PerCore = append(c.PerCore, 0)
			continue
		}
		busy, total := cpuBusy(t)
		pbusy, ptotal := cpuBusy(p)
		db, dt := busy-pbusy, total-ptotal
		pct := 0.0
		if dt > 0 {
			pct = clampPercent(db / dt * 100)
		}
		c.PerCore = append(c.PerCore, pct)
		busySum += max(db, 0)
		totalSum += max(dt, 0)
	}
	if totalSum > 0 {
		c.TotalPercent = clampPercent(busySum / totalSum * 100)
	}
	return c
}

// cpuBusy returns busy and total seconds as top counts them: idle and
// iowait are idle; guest time is already inside user on Linux.
func cpuBusy(t cpu.TimesStat) (busy, total float64) {
	total = t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	return total - t.Idle - t.Iowait, total
}

func clampPercent(v float64) float64 { return min(max(v, 0), 100) }

func rate(cur, prev uint64, window float64) *float64 {
	if window <= 0 || cur < prev { // no window, or the counter was reset
		return nil
	}
	r := float64(cur-prev) / window
	return &r
}

func (h *hostSystem) diskIO(prev, cur *counters, window float64) []DiskIO {
	out := []DiskIO{}
	for name, d := range cur.disks {
		if h.diskEx.MatchString(name) {
			continue
		}
		io := DiskIO{
			Device: name, ReadBytes: d.ReadBytes, WrittenBytes: d.WriteBytes,
			Reads: d.ReadCount, Writes: d.WriteCount, IOTimeSeconds: float64(d.IoTime) / 1000,
		}
		if prev != nil {
			if p, ok := prev.disks[name]; ok {
				io.ReadBytesRate = rate(d.ReadBytes, p.ReadBytes, window)
				io.WriteBytesRate = rate(d.WriteBytes, p.WriteBytes, window)
				io.ReadsRate = rate(d.ReadCount, p.ReadCount, window)
				io.WritesRate = rate(d.WriteCount, p.WriteCount, window)
				if ms := rate(d.IoTime, p.IoTime, window); ms != nil {
					busy := clampPercent(*ms / 1000 * 100)
					io.BusyPercentRate = &busy
				}
			}
		}
		out = append(out, io)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

func (h *hostSystem) netIO(prev, cur *counters, window float64) []NetworkIO {
	out := []NetworkIO{}
	before := map[string]net.IOCountersStat{}
	if prev != nil {
		for _, n := range prev.nets {
			before[n.Name] = n
		}
	}
	for _, n := range cur.nets {
		if h.netEx.MatchString(n.Name) {
			continue
		}
		io := NetworkIO{
			Interface: n.Name, RxBytes: n.BytesRecv, TxBytes: n.BytesSent,
			RxPackets: n.PacketsRecv, TxPackets: n.PacketsSent,
			RxErrors: n.Errin, TxErrors: n.Errout, RxDrops: n.Dropin, TxDrops: n.Dropout,
		}
		if p, ok := before[n.Name]; ok {
			io.RxBytesRate = rate(n.BytesRecv, p.BytesRecv, window)
			io.TxBytesRate = rate(n.BytesSent, p.BytesSent, window)
		}
		out = append(out, io)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Interface < out[j].Interface })
	return out
}

// mounts measures each real, local mount once.
func (h *hostSystem) mounts(parts []disk.PartitionStat) []MountUsage {
	out := []MountUsage{}
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.Mountpoint] || h.mountEx.MatchString(p.Mountpoint) || h.fsTypeEx.MatchString(p.Fstype) || hasOpt(p.Opts, "bind") {
			continue
		}
		seen[p.Mountpoint] = true
		m := MountUsage{Device: p.Device, Mountpoint: p.Mountpoint, FSType: p.Fstype, ReadOnly: hasOpt(p.Opts, "ro")}
		u, err := h.statfs.usage(p.Mountpoint)
		if err != nil {
			m.Error = err.Error()
		} else {
			m.Usage = u
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mountpoint < out[j].Mountpoint })
	return out
}

func (h *hostSystem) paths(parts []disk.PartitionStat) []PathUsage {
	out := make([]PathUsage, 0, len(h.o.Paths))
	for _, p := range h.o.Paths {
		pu := PathUsage{Path: p, Mountpoint: mountOf(p, parts)}
		u, err := h.statfs.usage(p)
		switch {
		case errors.Is(err, errAbsent):
			pu.Absent = true
		case err != nil:
			pu.Error = err.Error()
		default:
			pu.Usage = u
		}
		out = append(out, pu)
	}
	return out
}

// mountOf returns the mount point p lives on: the longest mount point that
// is p or one of its parents (symlinks are not resolved: a path is watched
// as configured).
func mountOf(p string, parts []disk.PartitionStat) string {
	best := ""
	for _, m := range parts {
		mp := m.Mountpoint
		if (p == mp || mp == "/" || strings.HasPrefix(p, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	return best
}

func hasOpt(opts []string, o string) bool {
	for _, x := range opts {
		if x == o {
			return true
		}
	}
	return false
}
