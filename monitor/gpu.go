package monitor

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// GPUSource reads the GPUs. A machine without a driver or without GPUs is
// a normal answer (GPUStats.Available false or no Devices), not an error.
type GPUSource interface {
	GPUs(ctx context.Context) (*GPUStats, error)
	// Close releases the driver.
	Close() error
}

// NVMLOptions configure NewNVMLSource.
type NVMLOptions struct {
	// Lib is the NVML binding (default nvml.New(), which loads
	// libnvidia-ml.so.1 at Init). Tests pass a go-nvml mock server.
	Lib nvml.Interface
	// Clock decides when a failed Init is retried (default time.Now).
	Clock func() time.Time
	// RetryInit is how long to wait before trying Init again after it
	// failed, so that a driver installed later is picked up without an
	// attempt every cycle (default 10m).
	RetryInit time.Duration
}

func (o NVMLOptions) withDefaults() NVMLOptions {
	if o.Lib == nil {
		o.Lib = nvml.New()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.RetryInit == 0 {
		o.RetryInit = 10 * time.Minute
	}
	return o
}

// nvmlSource is the GPUSource backed by NVIDIA's NVML.
type nvmlSource struct {
	o       NVMLOptions
	mu      sync.Mutex // NVML handles are shared; one reading at a time
	inited  bool
	reason  string    // why GPUs are unavailable (when !inited)
	nextTry time.Time // when Init is tried again
	events  nvml.EventSet
	// watched holds the UUIDs whose XID events are registered; xids
	// counts the events seen per UUID, lastXID the latest code.
	watched map[string]bool
	xids    map[string]uint64
	lastXID map[string]uint64
	xidTime map[string]time.Time
}

// NewNVMLSource returns the NVML-backed GPUSource.
func NewNVMLSource(o NVMLOptions) GPUSource {
	return &nvmlSource{o: o.withDefaults(), watched: map[string]bool{}, xids: map[string]uint64{}, lastXID: map[string]uint64{}, xidTime: map[string]time.Time{}}
}

// noGPUReasons are Init results that mean "this machine has no usable
// NVIDIA GPU", a normal state.
var noGPUReasons = map[nvml.Return]string{
	nvml.ERROR_LIBRARY_NOT_FOUND: "NVML library not found (no NVIDIA driver installed)",
	nvml.ERROR_DRIVER_NOT_LOADED: "NVIDIA driver not loaded",
	nvml.ERROR_NO_PERMISSION:     "no permission to use the NVIDIA driver",
	nvml.ERROR_NOT_FOUND:         "no NVIDIA GPU found",
}

func (s *nvmlSource) init() error {
	now := s.o.Clock()
	if now.Before(s.nextTry) {
		return nil
	}
	ret := s.o.Lib.Init()
	if ret != nvml.SUCCESS {
		s.nextTry = now.Add(s.o.RetryInit)
		if why, ok := noGPUReasons[ret]; ok {
			s.reason = why
			return nil
		}
		s.reason = "NVML init failed: " + ret.Error()
		return fmt.Errorf("monitor: nvml init: %s", ret.Error())
	}
	s.inited = true
	s.reason = ""
	if set, ret := s.o.Lib.EventSetCreate(); ret == nvml.SUCCESS {
		s.events = set
	}
	return nil
}

func (s *nvmlSource) GPUs(ctx context.Context) (*GPUStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inited {
		if err := s.init(); err != nil {
			return nil, err
		}
		if !s.inited {
			return &GPUStats{Available: false, Reason: s.reason, Devices: []GPU{}}, nil
		}
	}
	lib := s.o.Lib
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("monitor: nvml device count: %s", ret.Error())
	}
	st := &GPUStats{Available: true, Devices: make([]GPU, 0, n)}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		st.Driver = v
	}
	if n == 0 {
		st.Reason = "no NVIDIA GPU found"
	}
	devs := make([]nvml.Device, 0, n)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("monitor: gpu: %w", err)
		}
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			st.Devices = append(st.Devices, GPU{Index: i, Errors: []string{"handle: " + ret.Error()}})
			continue
		}
		devs = append(devs, dev)
		st.Devices = append(st.Devices, s.device(i, dev))
	}
	s.drainXID()
	for i := range st.Devices {
		g := &st.Devices[i]
		if g.UUID != "" && s.watched[g.UUID] {
			c, last := s.xids[g.UUID], s.lastXID[g.UUID]
			g.XIDErrors = &c
			if c > 0 {
				g.LastXID, g.LastXIDTime = &last, s.xidTime[g.UUID]
			}
		}
	}
	return st, nil
}

// device reads one GPU. A field the device does not support stays nil; any
// other failure is named in Errors.
func (s *nvmlSource) device(i int, d nvml.Device) GPU {
	g := GPU{Index: i}
	ok := func(field string, ret nvml.Return) bool {
		if ret == nvml.SUCCESS {
			return true
		}
		if ret != nvml.ERROR_NOT_SUPPORTED && ret != nvml.ERROR_FUNCTION_NOT_FOUND {
			g.Errors = append(g.Errors, field+": "+ret.Error())
		}
		return false
	}
	if v, ret := d.GetName(); ok("name", ret) {
		g.Name = v
	}
	if v, ret := d.GetUUID(); ok("uuid", ret) {
		g.UUID = v
		if s.events != nil && !s.watched[v] {
			// Registered once per device; devices without XID event
			// support answer NOT_SUPPORTED and get no XID count.
			if d.RegisterEvents(nvml.EventTypeXidCriticalError, s.events) == nvml.SUCCESS {
				s.watched[v] = true
			}
		}
	}
	if u, ret := d.GetUtilizationRates(); ok("utilization", ret) {
		gpu, memu := float64(u.Gpu), float64(u.Memory)
		g.UtilizationPercent, g.MemoryUtilizationPercent = &gpu, &memu
	}
	if m, ret := d.GetMemoryInfo(); ok("memory", ret) {
		used, total := m.Used, m.Total
		g.MemoryUsed, g.MemoryTotal = &used, &total
	}
	if t, ret := d.GetTemperature(nvml.TEMPERATURE_GPU); ok("temperature", ret) {
		c := float64(t)
		g.TemperatureC = &c
	}
	if p, ret := d.GetPowerUsage(); ok("power", ret) {
		w := float64(p) / 1000
		g.PowerWatts = &w
	}
	if p, ret := d.GetEnforcedPowerLimit(); ok("power limit", ret) {
		w := float64(p) / 1000
		g.PowerLimitWatts = &w
	}
	if e, ret := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC); ok("ecc", ret) {
		g.ECCUncorrected = &e
	}
	// Page retirement (before Ampere) and row remapping (Ampere, Hopper):
	// a GPU supports one or the other, and says NOT_SUPPORTED to the other.
	if st, ret := d.GetRetiredPagesPendingStatus(); ok("retired pages", ret) {
		p := st == nvml.FEATURE_ENABLED
		g.RetiredPagesPending = &p
	}
	if corr, unc, pending, failed, ret := d.GetRemappedRows(); ok("remapped rows", ret) {
		g.RowRemapPending, g.RowRemapFailed = &pending, &failed
		g.RemappedRowsCorrectable, g.RemappedRowsUncorrectable = &corr, &unc
	}
	reasons, ret := d.GetCurrentClocksEventReasons()
	if ret == nvml.ERROR_FUNCTION_NOT_FOUND || ret == nvml.ERROR_NOT_SUPPORTED {
		reasons, ret = d.GetCurrentClocksThrottleReasons() // drivers before r535
	}
	if ok("throttle reasons", ret) {
		g.Throttle = throttleNames(reasons)
	}
	if ps, ret := d.GetComputeRunningProcesses(); ok("processes", ret) {
		for _, p := range ps {
			g.Processes = append(g.Processes, GPUProcess{PID: p.Pid, Name: procName(p.Pid), MemoryUsed: p.UsedGpuMemory})
		}
	}
	return g
}

// drainXID takes every pending event off the set without waiting.
func (s *nvmlSource) drainXID() {
	if s.events == nil {
		return
	}
	for range 1024 { // a storm of events must not stall the cycle
		e, ret := s.events.Wait(0)
		if ret != nvml.SUCCESS { // ERROR_TIMEOUT: nothing pending
			return
		}
		if e.EventType&nvml.EventTypeXidCriticalError == 0 || e.Device == nil {
			continue
		}
		if uuid, ret := e.Device.GetUUID(); ret == nvml.SUCCESS {
			s.xids[uuid]++
			s.lastXID[uuid] = e.EventData
			s.xidTime[uuid] = s.o.Clock().UTC()
		}
	}
}

var throttleBits = []struct {
	bit  uint64
	name string
}{
	{nvml.ClocksEventReasonGpuIdle, "gpu_idle"},
	{nvml.ClocksEventReasonApplicationsClocksSetting, "applications_clocks_setting"},
	{nvml.ClocksEventReasonSwPowerCap, "sw_power_cap"},
	{nvml.ClocksThrottleReasonHwSlowdown, "hw_slowdown"},
	{nvml.ClocksEventReasonSyncBoost, "sync_boost"},
	{nvml.ClocksEventReasonSwThermalSlowdown, "sw_thermal_slowdown"},
	{nvml.ClocksThrottleReasonHwThermalSlowdown, "hw_thermal_slowdown"},
	{nvml.ClocksThrottleReasonHwPowerBrakeSlowdown, "hw_power_brake_slowdown"},
	{nvml.ClocksEventReasonDisplayClockSetting, "display_clock_setting"},
}

func throttleNames(r uint64) []string {
	var out []string
	for _, b := range throttleBits {
		if r&b.bit != 0 {
			out = append(out, b.name)
		}
	}
	return out
}

func procName(pid uint32) string {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/comm")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (s *nvmlSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inited {
		return nil
	}
	s.inited = false
	if s.events != nil {
		s.events.Free()
		s.events = nil
	}
	if ret := s.o.Lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("monitor: nvml shutdown: %s", ret.Error())
	}
	return nil
}
