package index

import (
	"encoding/json"
	"errors"
	"io"
)

// Record is the typed store of one record kind kept as JSON under one key
// of the index (records.go): other packages read and write their records
// through it, never through raw keys on the KV. Every write is synced.
type Record[T any] struct {
	kv  *KV
	key []byte
}

// Load returns the record: nil if there is none, or if it does not decode
// (a record from a newer version, a torn write), which callers treat as
// no record rather than as a broken repository.
func (s Record[T]) Load() (*T, error) {
	v, err := s.kv.Get(s.key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec T
	if json.Unmarshal(v, &rec) != nil {
		return nil, nil
	}
	return &rec, nil
}

// Save replaces the record with rec.
func (s Record[T]) Save(rec T) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.kv.Put(s.key, v, true)
}

// Delete removes the record; a missing one is fine.
func (s Record[T]) Delete() error { return s.kv.Delete(s.key, true) }

// Records is the typed store of a record kind kept as JSON, one record per
// name (a source label, an operation) under one prefix.
type Records[T any] struct {
	kv     *KV
	prefix []byte
}

func (s Records[T]) key(name string) []byte {
	return append(append([]byte{}, s.prefix...), name...)
}

// All returns every record that decodes, in name order.
func (s Records[T]) All() ([]T, error) {
	var out []T
	err := s.kv.Scan(s.prefix, PrefixEnd(s.prefix), func(_, v []byte) error {
		var rec T
		if json.Unmarshal(v, &rec) == nil {
			out = append(out, rec)
		}
		return nil
	})
	if err == io.EOF {
		err = nil
	}
	return out, err
}

// Save replaces the record of name with rec.
func (s Records[T]) Save(name string, rec T) error {
	return s.SaveAll(map[string]T{name: rec})
}

// SaveAll replaces the records of every name in recs, in one batch.
func (s Records[T]) SaveAll(recs map[string]T) error {
	b := s.kv.NewBatch()
	for name, rec := range recs {
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		b.Put(s.key(name), v)
	}
	return b.Commit(true)
}

// Delete removes the record of name, reporting whether there was one.
func (s Records[T]) Delete(name string) (bool, error) {
	ok, err := s.kv.Has(s.key(name))
	if err != nil || !ok {
		return false, err
	}
	return true, s.kv.Delete(s.key(name), true)
}

// CheckStore holds the last check run (CheckKey).
func (r *Repo) CheckStore() Record[CheckRecord] { return Record[CheckRecord]{r.KV, CheckKey()} }

// CorruptReadsStore holds the corrupt reads through the mount
// (CorruptReadsKey).
func (r *Repo) CorruptReadsStore() Record[CorruptReads] {
	return Record[CorruptReads]{r.KV, CorruptReadsKey()}
}

// TestRestoreStore holds the last test restore (TestRestoreKey).
func (r *Repo) TestRestoreStore() Record[TestRestoreRecord] {
	return Record[TestRestoreRecord]{r.KV, TestRestoreKey()}
}

// AttemptStore holds the last snapshot attempt of each source, by label
// (AttemptKey).
func (r *Repo) AttemptStore() Records[Attempt] { return Records[Attempt]{r.KV, AttemptPrefix()} }

// MaintenanceStore holds the last run of each maintenance operation, by
// op (MaintenanceKey).
func (r *Repo) MaintenanceStore() Records[MaintenanceRecord] {
	return Records[MaintenanceRecord]{r.KV, MaintenancePrefix()}
}
