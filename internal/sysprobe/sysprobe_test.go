package sysprobe

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

func write(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProbeFiles(t *testing.T) {
	root := t.TempDir()
	write(t, root, "etc/os-release", "NAME=\"Ubuntu\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\n# comment\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nID=ubuntu\n")
	write(t, root, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Oct 10 12:02:12 UTC 2024\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")
	in := Probe(Options{Root: root, NoNVML: true, Kernel: "6.8.0-45-generic"})
	want := Info{Host: in.Host, Kernel: "6.8.0-45-generic", OSRelease: "Ubuntu 22.04.4 LTS", NVIDIADriver: "565.57.01"}
	if in != want {
		t.Errorf("got %+v, want %+v", in, want)
	}
	if in.Host == "" {
		t.Error("no host name")
	}

	write(t, root, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n")
	write(t, root, "etc/os-release", "NAME=Debian\nVERSION='12 (bookworm)'\n")
	in = Probe(Options{Root: root, NoNVML: true})
	if in.NVIDIADriver != "550.54.14" || in.OSRelease != "Debian 12 (bookworm)" || in.Kernel == "" {
		t.Errorf("got %+v", in)
	}
}

// Nothing there is empty, never an error.
func TestProbeNothing(t *testing.T) {
	failing := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	in := Probe(Options{Root: t.TempDir(), NVML: failing})
	if in.OSRelease != "" || in.NVIDIADriver != "" || in.CUDA != "" {
		t.Errorf("got %+v", in)
	}
	// This host, whatever it has: no panic, no error.
	t.Logf("this host: %+v", Probe(Options{}))
	panicking := &mock.Interface{InitFunc: func() nvml.Return { panic("no libnvidia-ml.so.1") }}
	if in := Probe(Options{Root: t.TempDir(), NVML: panicking}); in.NVIDIADriver != "" {
		t.Errorf("got %+v", in)
	}
}

func TestProbeNVML(t *testing.T) {
	root := t.TempDir()
	write(t, root, "proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n")
	shut := false
	lib := &mock.Interface{
		InitFunc:                       func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:                   func() nvml.Return { shut = true; return nvml.SUCCESS },
		SystemGetDriverVersionFunc:     func() (string, nvml.Return) { return "560.35.03", nvml.SUCCESS },
		SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) { return 12060, nvml.SUCCESS },
	}
	in := Probe(Options{Root: root, NVML: lib})
	if in.NVIDIADriver != "560.35.03" || in.CUDA != "12.6" || !shut {
		t.Errorf("got %+v (shut down %v)", in, shut)
	}
}
