package index

import (
	"encoding/json"
	"testing"
	"time"
)

// The typed stores keep each record where the format says (a record
// written through CheckStore is JSON under CheckKey, as before the
// stores), read back what they wrote, treat a record that does not decode
// as none, and delete.
func TestRecordStore(t *testing.T) {
	r := newTestRepo(t)
	s := r.CheckStore()
	if got, err := s.Load(); got != nil || err != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	want := CheckRecord{Time: time.Unix(100, 0).UTC(), Result: CheckErrors, Errors: 2, FirstError: "pack 1234 damaged"}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	raw, err := r.KV.Get(CheckKey())
	if err != nil {
		t.Fatalf("record not under CheckKey: %v", err)
	}
	var onDisk CheckRecord
	if err := json.Unmarshal(raw, &onDisk); err != nil || onDisk != want {
		t.Fatalf("on disk %s (%v), want %+v", raw, err, want)
	}
	if got, err := s.Load(); err != nil || got == nil || *got != want {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if err := r.KV.Put(CheckKey(), []byte("{torn"), true); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(); got != nil || err != nil {
		t.Fatalf("undecodable: %v %v, want none", got, err)
	}
	if err := s.Delete(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.KV.Has(CheckKey()); ok {
		t.Fatal("Delete left the record")
	}
	// Each single-record store has its own key.
	if err := r.CorruptReadsStore().Save(CorruptReads{Reads: 3}); err != nil {
		t.Fatal(err)
	}
	if err := r.TestRestoreStore().Save(TestRestoreRecord{Result: CheckOK, Files: 20}); err != nil {
		t.Fatal(err)
	}
	if c, _ := r.CorruptReadsStore().Load(); c == nil || c.Reads != 3 {
		t.Fatalf("corrupt reads %+v", c)
	}
	if c, _ := r.TestRestoreStore().Load(); c == nil || c.Files != 20 {
		t.Fatalf("test restore %+v", c)
	}
	if ok, _ := r.KV.Has(CorruptReadsKey()); !ok {
		t.Fatal("corrupt reads not under CorruptReadsKey")
	}
	if ok, _ := r.KV.Has(TestRestoreKey()); !ok {
		t.Fatal("test restore not under TestRestoreKey")
	}
}

// A keyed store saves several records in one batch, lists them in name
// order (skipping one that does not decode), replaces and deletes by name,
// and keeps them under AttemptKey(name), never touching another kind.
func TestRecordsStore(t *testing.T) {
	r := newTestRepo(t)
	s := r.AttemptStore()
	if err := s.SaveAll(map[string]Attempt{
		"models": {Label: "models", Result: AttemptOK},
		"etc":    {Label: "etc", Result: AttemptFailed, Error: "disk full"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := r.MaintenanceStore().Save("prune", MaintenanceRecord{Op: "prune", Result: MaintenanceOK}); err != nil {
		t.Fatal(err)
	}
	if err := r.KV.Put(AttemptKey("torn"), []byte("{"), true); err != nil {
		t.Fatal(err)
	}
	all, err := s.All()
	if err != nil || len(all) != 2 || all[0].Label != "etc" || all[1].Label != "models" {
		t.Fatalf("All = %+v, %v", all, err)
	}
	if err := s.Save("etc", Attempt{Label: "etc", Result: AttemptOK}); err != nil {
		t.Fatal(err)
	}
	raw, err := r.KV.Get(AttemptKey("etc"))
	var a Attempt
	if err != nil || json.Unmarshal(raw, &a) != nil || a.Result != AttemptOK {
		t.Fatalf("AttemptKey(etc) = %s, %v", raw, err)
	}
	if ok, err := s.Delete("models"); !ok || err != nil {
		t.Fatalf("Delete(models) = %v, %v", ok, err)
	}
	if ok, err := s.Delete("models"); ok || err != nil {
		t.Fatalf("Delete(models) again = %v, %v", ok, err)
	}
	if m, _ := r.MaintenanceStore().All(); len(m) != 1 || m[0].Op != "prune" {
		t.Fatalf("maintenance records %+v", m)
	}
}
