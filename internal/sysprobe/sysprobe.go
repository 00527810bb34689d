// Package sysprobe tells what a host was running: kernel release, OS
// release, NVIDIA driver and CUDA versions, as the seed's
// backup-manifest.json recorded beside each backup. A snapshot's manifest
// keeps them, so a restore after a driver upgrade can tell which stack the
// weights and configs came from.
//
// Nothing here fails: a value that cannot be found is "" (no GPU, no
// driver, a container without /etc/os-release). The driver version comes
// from NVML when its library loads, else from /proc/driver/nvidia/version
// (the kernel module's, present without the user-space library); the CUDA
// version (the highest the driver supports) only from NVML.
//
// It lives apart from monitor, which has its own long-lived NVML source, so
// snapshot need not import monitor: cmd probes and passes the result in.
package sysprobe

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"golang.org/x/sys/unix"
)

// Info is what Probe found; "" where nothing was.
type Info struct {
	Host         string `json:"host,omitempty"`
	Kernel       string `json:"kernel,omitempty"`
	OSRelease    string `json:"os_release,omitempty"`
	NVIDIADriver string `json:"nvidia_driver,omitempty"`
	CUDA         string `json:"cuda,omitempty"`
}

// Options are for tests; the zero value probes this host.
type Options struct {
	// Root is prepended to /etc/os-release and /proc/driver/nvidia/version
	// (default "/").
	Root string
	// NVML is the binding (default nvml.New()); NoNVML skips it.
	NVML   nvml.Interface
	NoNVML bool
	// Kernel overrides uname's release when not "".
	Kernel string
}

// Probe gathers Info. It takes a few milliseconds: NVML's library is
// loaded, asked two questions and shut down again.
func Probe(o Options) Info {
	if o.Root == "" {
		o.Root = "/"
	}
	var in Info
	in.Host, _ = os.Hostname()
	in.Kernel = o.Kernel
	if in.Kernel == "" {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			in.Kernel = unix.ByteSliceToString(u.Release[:])
		}
	}
	in.OSRelease = osRelease(filepath.Join(o.Root, "etc/os-release"))
	if in.OSRelease == "" {
		in.OSRelease = osRelease(filepath.Join(o.Root, "usr/lib/os-release"))
	}
	if !o.NoNVML {
		in.NVIDIADriver, in.CUDA = fromNVML(o.NVML)
	}
	if in.NVIDIADriver == "" {
		in.NVIDIADriver = procDriverVersion(filepath.Join(o.Root, "proc/driver/nvidia/version"))
	}
	return in
}

// osRelease is PRETTY_NAME of an os-release(5) file, else NAME VERSION.
func osRelease(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `'"`)
		}
		vals[k] = v
	}
	if p := vals["PRETTY_NAME"]; p != "" {
		return p
	}
	return strings.TrimSpace(vals["NAME"] + " " + vals["VERSION"])
}

// procDriverVersion reads the kernel module's version from the NVRM line:
// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 ..."
// or "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  565.57.01  Release Build ...".
func procDriverVersion(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "NVRM version:") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if isVersion(f) {
				return f
			}
		}
	}
	return ""
}

func isVersion(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil || p == "" {
			return false
		}
	}
	return true
}

// fromNVML asks NVML for the driver version and the CUDA version the
// driver supports; ("", "") when the library or driver is not there.
func fromNVML(lib nvml.Interface) (driver, cuda string) {
	if lib == nil {
		lib = nvml.New()
	}
	defer func() {
		// go-nvml panics when its library cannot be loaded at all on some
		// versions; a missing GPU stack is never an error here.
		if recover() != nil {
			driver, cuda = "", ""
		}
	}()
	if lib.Init() != nvml.SUCCESS {
		return "", ""
	}
	defer lib.Shutdown()
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		driver = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == nvml.SUCCESS && v > 0 {
		cuda = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	return driver, cuda
}
