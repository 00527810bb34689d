package monitor

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// gpuReading is what the test makes mock GPU i report.
type gpuReading struct {
	util, temp, powerMW, limitMW uint32
	usedMiB                      uint64
	ecc                          nvml.Return // SUCCESS: eccCount errors; otherwise returned as is
	eccCount                     uint64
	throttle                     uint64
	// Row remapping (Ampere, Hopper): pending, failed, correctable and
	// uncorrectable rows. Page retirement is not supported on either.
	remapPending, remapFailed bool
	remapCorr, remapUnc       int
	procs                     []nvml.ProcessInfo
}

// dgx returns go-nvml's DGX A100 fixture (8 x A100-SXM4-40GB) with the
// readings the fixture leaves unset filled from r, and an event set whose
// queue the test controls.
func dgx(t testing.TB, r func(i int) gpuReading) (*dgxa100.Server, *xidQueue) {
	t.Helper()
	return dgxOf(t, dgxa100.New(), r)
}

// dgxOf fills srv (dgxa100 or dgxh100, both go-nvml's mock server) as dgx
// does.
func dgxOf(t testing.TB, srv *server.Server, r func(i int) gpuReading) (*server.Server, *xidQueue) {
	t.Helper()
	q := &xidQueue{}
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{WaitFunc: q.wait, FreeFunc: func() nvml.Return { return nvml.SUCCESS }}, nvml.SUCCESS
	}
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		rd := r(i)
		dev.MemoryInfo.Used = rd.usedMiB << 20
		dev.MemoryInfo.Free = dev.MemoryInfo.Total - dev.MemoryInfo.Used
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: rd.util, Memory: rd.util / 2}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return rd.temp, nvml.SUCCESS
		}
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return rd.powerMW, nvml.SUCCESS }
		dev.GetEnforcedPowerLimitFunc = func() (uint32, nvml.Return) { return rd.limitMW, nvml.SUCCESS }
		dev.GetTotalEccErrorsFunc = func(typ nvml.MemoryErrorType, counter nvml.EccCounterType) (uint64, nvml.Return) {
			if typ != nvml.MEMORY_ERROR_TYPE_UNCORRECTED || counter != nvml.VOLATILE_ECC {
				return 0, nvml.ERROR_INVALID_ARGUMENT
			}
			return rd.eccCount, rd.ecc
		}
		dev.GetRetiredPagesPendingStatusFunc = func() (nvml.EnableState, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		dev.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) {
			return rd.remapCorr, rd.remapUnc, rd.remapPending, rd.remapFailed, nvml.SUCCESS
		}
		dev.GetCurrentClocksEventReasonsFunc = func() (uint64, nvml.Return) { return rd.throttle, nvml.SUCCESS }
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return rd.procs, nvml.SUCCESS }
		dev.RegisterEventsFunc = func(types uint64, _ nvml.EventSet) nvml.Return {
			if types != nvml.EventTypeXidCriticalError {
				return nvml.ERROR_INVALID_ARGUMENT
			}
			q.register(dev)
			return nvml.SUCCESS
		}
	}
	return srv, q
}

// xidQueue is the mock event set's queue.
type xidQueue struct {
	mu         sync.Mutex
	registered []nvml.Device
	pending    []nvml.EventData
}

func (q *xidQueue) register(d nvml.Device) {
	q.mu.Lock()
	q.registered = append(q.registered, d)
	q.mu.Unlock()
}

func (q *xidQueue) push(d nvml.Device, xid uint64) {
	q.mu.Lock()
	q.pending = append(q.pending, nvml.EventData{Device: d, EventType: nvml.EventTypeXidCriticalError, EventData: xid})
	q.mu.Unlock()
}

func (q *xidQueue) wait(timeoutMs uint32) (nvml.EventData, nvml.Return) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 {
		return nvml.EventData{}, nvml.ERROR_TIMEOUT
	}
	e := q.pending[0]
	q.pending = q.pending[1:]
	return e, nvml.SUCCESS
}

func TestNVMLSourceOnDGXA100(t *testing.T) {
	srv, q := dgx(t, func(i int) gpuReading {
		r := gpuReading{util: uint32(10 * i), temp: 40 + uint32(i), powerMW: 250000, limitMW: 400000, usedMiB: 1024 * uint64(i), ecc: nvml.SUCCESS}
		switch i {
		case 1:
			r.ecc = nvml.ERROR_NOT_SUPPORTED // ECC off: absent, not an error
		case 2:
			r.ecc = nvml.ERROR_GPU_IS_LOST
			r.throttle = nvml.ClocksEventReasonSwPowerCap | nvml.ClocksThrottleReasonHwThermalSlowdown
			r.procs = []nvml.ProcessInfo{{Pid: 1, UsedGpuMemory: 2 << 30}}
		}
		return r
	})
	src := NewNVMLSource(NVMLOptions{Lib: srv})
	defer src.Close()
	st, err := src.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Available || len(st.Devices) != 8 || st.Driver != "550.54.15" || st.NoGPUs() {
		t.Fatalf("stats %+v", st)
	}
	uuids := map[string]bool{}
	for i, g := range st.Devices {
		if g.Index != i || g.Name != "Mock NVIDIA A100-SXM4-40GB" || !strings.HasPrefix(g.UUID, "GPU-") {
			t.Fatalf("gpu %d identity %q %q", i, g.Name, g.UUID)
		}
		uuids[g.UUID] = true
		if *g.MemoryTotal != 40960<<20 || *g.MemoryUsed != uint64(i)<<30 {
			t.Errorf("gpu %d memory %d/%d", i, *g.MemoryUsed, *g.MemoryTotal)
		}
		if *g.UtilizationPercent != float64(10*i) || *g.TemperatureC != float64(40+i) || *g.PowerWatts != 250 || *g.PowerLimitWatts != 400 {
			t.Errorf("gpu %d readings %v %v %v %v", i, *g.UtilizationPercent, *g.TemperatureC, *g.PowerWatts, *g.PowerLimitWatts)
		}
		if g.XIDErrors == nil || *g.XIDErrors != 0 || g.LastXID != nil {
			t.Errorf("gpu %d xid %v/%v, want 0 counted", i, g.XIDErrors, g.LastXID)
		}
	}
	if len(uuids) != 8 {
		t.Errorf("uuids not distinct: %v", uuids)
	}
	if g := st.Devices[0]; g.ECCUncorrected == nil || *g.ECCUncorrected != 0 || len(g.Errors) != 0 {
		t.Errorf("gpu0 ecc %v errors %v", g.ECCUncorrected, g.Errors)
	}
	if g := st.Devices[1]; g.ECCUncorrected != nil || len(g.Errors) != 0 {
		t.Errorf("gpu1 (ECC not supported): ecc %v errors %v", g.ECCUncorrected, g.Errors)
	}
	g2 := st.Devices[2]
	if g2.ECCUncorrected != nil || len(g2.Errors) != 1 || !strings.Contains(g2.Errors[0], "ecc") {
		t.Errorf("gpu2 (ECC read failed): ecc %v errors %v", g2.ECCUncorrected, g2.Errors)
	}
	if !sameStrings(g2.Throttle, []string{"sw_power_cap", "hw_thermal_slowdown"}) {
		t.Errorf("gpu2 throttle %v", g2.Throttle)
	}
	if len(g2.Processes) != 1 || g2.Processes[0].PID != 1 || g2.Processes[0].MemoryUsed != 2<<30 {
		t.Errorf("gpu2 processes %+v", g2.Processes)
	}

	// XID events are registered once per device and counted per GPU.
	if len(q.registered) != 8 {
		t.Fatalf("%d devices registered for XID events", len(q.registered))
	}
	q.push(srv.Devices[3], 79)
	q.push(srv.Devices[3], 48)
	st, err = src.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := st.Devices[3]; *g.XIDErrors != 2 || g.LastXID == nil || *g.LastXID != 48 {
		t.Errorf("gpu3 xid %v last %v, want 2 and 48", *g.XIDErrors, g.LastXID)
	}
	if *st.Devices[4].XIDErrors != 0 || len(q.registered) != 8 {
		t.Errorf("xid miscounted or devices registered twice")
	}
}

func TestGPURulesOnDGXA100(t *testing.T) {
	srv, _ := dgx(t, func(i int) gpuReading {
		r := gpuReading{util: 90, temp: 60, powerMW: 300000, limitMW: 400000, usedMiB: 10240, ecc: nvml.SUCCESS}
		if i == 5 {
			r.temp, r.usedMiB = 85, 39000 // hot, and 95% of 40 GiB used
		}
		return r
	})
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(clock, sys)
	o.GPUs = NewNVMLSource(NVMLOptions{Lib: srv, Clock: clock.Now})
	m := mustNew(t, o)
	r := collect(t, m)
	if a := findAlert(r.Alerts, RuleGPUTemperatureHigh, "gpu5"); a == nil || a.State != StatePending || a.Severity != SeverityCritical {
		t.Fatalf("temperature alert %+v", a)
	}
	if a := findAlert(r.Alerts, RuleGPUMemoryHigh, "gpu5"); a == nil || a.State != StatePending || *a.Value < 95 {
		t.Fatalf("memory alert %+v", a)
	}
	if len(r.Alerts) != 2 {
		t.Fatalf("alerts %+v: only gpu5 is hot and full", r.Alerts)
	}
	clock.Advance(time.Minute)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleGPUTemperatureHigh, "gpu5"); a == nil || a.State != StateFiring || r.Health != HealthCritical {
		t.Fatalf("after 1m: temperature alert %+v health %s", a, r.Health)
	}
	body, err := m.Render(context.Background(), FileGPUs)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(body)), "\n"); len(lines) != 10 || !strings.Contains(lines[6], "85C") || !strings.HasPrefix(lines[9], "driver 550.54.15") {
		t.Fatalf("status/gpus:\n%s", body)
	}
}

func TestNoGPUIsNormal(t *testing.T) {
	inits := 0
	srv, _ := dgx(t, func(int) gpuReading { return gpuReading{ecc: nvml.SUCCESS} })
	srv.InitFunc = func() nvml.Return { inits++; return nvml.ERROR_LIBRARY_NOT_FOUND }
	clock := newFakeClock()
	src := NewNVMLSource(NVMLOptions{Lib: srv, Clock: clock.Now, RetryInit: 10 * time.Minute})
	for range 3 {
		st, err := src.GPUs(context.Background())
		if err != nil || st.Available || !st.NoGPUs() || !strings.Contains(st.Reason, "NVML library not found") {
			t.Fatalf("no library: %+v, %v", st, err)
		}
		clock.Advance(time.Minute)
	}
	if inits != 1 {
		t.Fatalf("Init tried %d times in 3 minutes, want once per 10 minutes", inits)
	}
	clock.Advance(10 * time.Minute)
	srv.InitFunc = func() nvml.Return { inits++; return nvml.SUCCESS } // driver installed meanwhile
	st, err := src.GPUs(context.Background())
	if err != nil || !st.Available || len(st.Devices) != 8 || inits != 2 {
		t.Fatalf("after the driver appeared: inits %d, %+v, %v", inits, st, err)
	}

	// An Init failure that is not "no GPU" is a collector error.
	bad := dgxa100.New()
	bad.InitFunc = func() nvml.Return { return nvml.ERROR_UNKNOWN }
	if _, err := NewNVMLSource(NVMLOptions{Lib: bad}).GPUs(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "monitor: nvml init") {
		t.Fatalf("unknown init failure: %v", err)
	}
}

// The real binding on this machine: without a driver it is "no GPUs
// found" and no error; with one, it lists the GPUs.
func TestRealNVML(t *testing.T) {
	src := NewNVMLSource(NVMLOptions{})
	defer src.Close()
	st, err := src.GPUs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Available && st.Reason == "" {
		t.Fatalf("unavailable without a reason: %+v", st)
	}
	t.Logf("gpus: available=%v reason=%q devices=%d", st.Available, st.Reason, len(st.Devices))

	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(clock, sys)
	o.GPUs = src
	m := mustNew(t, o)
	r := collect(t, m)
	if st.NoGPUs() {
		body, _ := m.Render(context.Background(), FileGPUs)
		if !strings.HasPrefix(string(body), "no GPUs found") || len(r.Alerts) != 0 {
			t.Fatalf("status/gpus %q alerts %v", body, r.Alerts)
		}
	}
}

// The seed's hardware (8 x H100 SXM5 80GB, go-nvml's dgxh100 fixture):
// GPU faults raise rules with dcgm-exporter's meaning. GPU 1 gets a
// critical XID (79, fallen off the bus), GPU 2 double-bit ECC errors,
// GPU 3 a pending row remap, GPU 4 a failed one; the others stay quiet.
// gpu_xid resolves gpu_xid_window after the event; the others hold while
// the GPU reports them.
func TestGPUFaultRulesOnDGXH100(t *testing.T) {
	srv, q := dgxOf(t, dgxh100.New(), func(i int) gpuReading {
		r := gpuReading{util: 50, temp: 50, powerMW: 300000, limitMW: 700000, usedMiB: 1024, ecc: nvml.SUCCESS, remapCorr: 1}
		switch i {
		case 2:
			r.eccCount = 3
		case 3:
			r.remapPending, r.remapUnc = true, 1
		case 4:
			r.remapFailed = true
		}
		return r
	})
	clock, sys := newFakeClock(), &fakeSystem{}
	sys.set(cpuAt(10), nil)
	o := testOptions(clock, sys)
	o.GPUs = NewNVMLSource(NVMLOptions{Lib: srv, Clock: clock.Now})
	m := mustNew(t, o)
	collect(t, m) // registers the XID events
	if len(q.registered) != 8 {
		t.Fatalf("%d H100s registered for XID events", len(q.registered))
	}
	q.push(srv.Devices[1], 79)
	clock.Advance(time.Minute)
	xidAt := clock.Now()
	r := collect(t, m)

	want := map[[2]string]string{
		{RuleGPUXID, "gpu1"}:          SeverityCritical,
		{RuleGPUECCDBE, "gpu2"}:       SeverityCritical,
		{RuleGPUPagesPending, "gpu3"}: SeverityWarning,
		{RuleGPUPagesPending, "gpu4"}: SeverityWarning,
	}
	for k, sev := range want {
		a := findAlert(r.Alerts, k[0], k[1])
		if a == nil || a.State != StateFiring || a.Severity != sev {
			t.Errorf("%s %s: %+v, want firing %s", k[0], k[1], a, sev)
		}
	}
	if len(r.Alerts) != len(want) {
		t.Errorf("alerts %+v, want only the faulty GPUs", r.Alerts)
	}
	if a := findAlert(r.Alerts, RuleGPUXID, "gpu1"); a == nil || !strings.Contains(a.Message, "XID 79") || !strings.Contains(a.Message, "H100") {
		t.Errorf("xid message %+v", a)
	}
	if a := findAlert(r.Alerts, RuleGPUECCDBE, "gpu2"); a == nil || a.Value == nil || *a.Value != 3 || !strings.Contains(a.Message, "double-bit") {
		t.Errorf("ecc alert %+v", a)
	}
	if a := findAlert(r.Alerts, RuleGPUPagesPending, "gpu3"); a == nil || !strings.Contains(a.Message, "remapped rows pending") {
		t.Errorf("remap pending %+v", a)
	}
	if a := findAlert(r.Alerts, RuleGPUPagesPending, "gpu4"); a == nil || !strings.Contains(a.Message, "remap failed") {
		t.Errorf("remap failed %+v", a)
	}

	fams := parseProm(t, metricsText(t, m.Latest(), r.Alerts))
	if v := value(t, fams, "citadelfs_gpu_last_xid", "gpu", "1"); v != 79 {
		t.Errorf("citadelfs_gpu_last_xid = %v", v)
	}
	if v := value(t, fams, "citadelfs_gpu_last_xid_timestamp_seconds", "gpu", "1"); v != float64(xidAt.Unix()) {
		t.Errorf("citadelfs_gpu_last_xid_timestamp_seconds = %v, want %d", v, xidAt.Unix())
	}
	if v := value(t, fams, "citadelfs_gpu_ecc_uncorrected_errors_total", "gpu", "2"); v != 3 {
		t.Errorf("ecc = %v", v)
	}
	if value(t, fams, "citadelfs_gpu_row_remap_pending", "gpu", "3") != 1 || value(t, fams, "citadelfs_gpu_row_remap_failed", "gpu", "4") != 1 ||
		value(t, fams, "citadelfs_gpu_remapped_rows", "gpu", "3", "cause", "uncorrectable") != 1 {
		t.Errorf("row remap series wrong")
	}
	if _, ok := fams["citadelfs_gpu_retired_pages_pending"]; ok {
		t.Errorf("H100 has no page retirement: the series must be absent")
	}

	// An XID is an event: the alert resolves gpu_xid_window after it.
	clock.Advance(m.Config().GPUXIDWindow - time.Minute)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleGPUXID, "gpu1"); a == nil || a.State != StateFiring {
		t.Fatalf("gpu_xid resolved before its window: %+v", a)
	}
	clock.Advance(2 * time.Minute)
	r = collect(t, m)
	if a := findAlert(r.Alerts, RuleGPUXID, "gpu1"); a != nil {
		t.Fatalf("gpu_xid still active after its window: %+v", a)
	}
	if findAlert(r.Alerts, RuleGPUECCDBE, "gpu2") == nil {
		t.Fatalf("gpu_ecc_dbe resolved while the GPU still reports its errors")
	}
}
