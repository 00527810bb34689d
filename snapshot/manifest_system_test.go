package snapshot

import (
	"encoding/json"
	"testing"
)

// A manifest written before the system was recorded still decodes, with
// System nil; one with it round-trips.
func TestManifestSystemInfo(t *testing.T) {
	m := Manifest{Version: 1, Host: "gpu01", Sources: []Source{{Label: "models", Path: "/m"}}, Program: "citadelfs"}
	m.Sources[0].Tree[0] = 1
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeManifest(b)
	if err != nil || dec.System != nil {
		t.Fatalf("old manifest: %+v %v", dec, err)
	}
	var raw map[string]any
	json.Unmarshal(b, &raw)
	if _, ok := raw["system"]; ok {
		t.Errorf("an unrecorded system is written: %s", b)
	}
	m.System = &SystemInfo{Kernel: "6.8.0-45-generic", OSRelease: "Ubuntu 22.04.4 LTS", NVIDIADriver: "550.54.14", CUDA: "12.4"}
	b, _ = marshalManifest(&m)
	dec, err = DecodeManifest(b)
	if err != nil || dec.System == nil || *dec.System != *m.System {
		t.Fatalf("round trip: %+v %v", dec, err)
	}
}
