package snapshot

import (
	"encoding/json"
	"testing"
)

// A manifest written before the system was recorded still decodes, with
// System nil; one with it round-trips.
func TestManifestSystemInfo(t *testing.T) {
	// As an older citadelfs wrote it, before system (and paths) existed.
	old := []byte(`{"version":1,"time":"2026-11-01T02:00:00Z","created":"2026-11-01T02:00:03.5Z","host":"gpu01","tags":["daily"],` +
		`"sources":[{"label":"models","path":"/mnt/citadel-models/active","tree":"0100000000000000000000000000000000000000000000000000000000000000",` +
		`"stats":{"files":3,"dirs":1,"others":0,"bytes":10,"data_bytes":10,"read_bytes":10,"new_bytes":10,"stored_bytes":10,"new_chunks":1,"unreadable":0,"changed":0,"duration_ms":5},` +
		`"root":{"mode":2147484141,"uid":0,"gid":0,"mtime_ns":1}}],"program":"citadelfs"}`)
	if m, err := DecodeManifest(old); err != nil || m.System != nil || m.Host != "gpu01" || m.Sources[0].Stats.Files != 3 {
		t.Fatalf("a manifest from before system: %+v %v", m, err)
	}
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
