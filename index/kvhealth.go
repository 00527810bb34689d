package index

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble"
)

// What Pebble says about itself in the background reaches the user here,
// instead of being dropped (a flush or compaction that failed used to go
// unseen until writes stalled forever) or ending the process from inside
// the library (Pebble's Fatalf used to os.Exit):
//
//   - A background error (a flush or compaction failed) is kept and
//     stored in the index as a Problem record (key 'e') that the monitor
//     raises as backup_corrupt until a check that verifies the whole
//     index passes (ClearProblem). If Pebble found damage (a table block
//     fails its checksum), writes fail from then on with ErrCorrupt and
//     the remedy (the command prints it): every compaction over that
//     table would fail the same way, and L0 would only grow. Any other
//     background error is logged once, since nothing returns it.
//   - Pebble giving up (Fatalf: a WAL or MANIFEST write that failed)
//     parks the goroutine that reported it (Fatalf must not return, and
//     Pebble's state is not to be touched again) and fails every later
//     call, and every call waiting on a write, with one line saying what
//     happened. The command returns that error; cmd maps it to an exit
//     code. Everything synced before is on disk.
//   - Every write is bounded: one that has not finished within
//     StallTimeout (Pebble's write stall, when flushes or compactions
//     cannot keep up or keep failing, or a disk that does not answer)
//     fails with an error naming the stall and the last background error,
//     and so does one waiting when the interrupt channel closes (SIGTERM).
//     The abandoned write may still be inside Pebble: every later write
//     fails, and Close does not wait for it.

// Problem is a background failure of a Pebble database.
type Problem struct {
	Time time.Time `json:"time"`
	// Error is Pebble's error, one line.
	Error string `json:"error"`
	// Corrupt says Pebble found damage (a checksum mismatch): `repair
	// index` is the remedy; otherwise the cause may have passed (a full
	// disk since freed) and a check that verifies the index clears it.
	Corrupt bool `json:"corrupt,omitempty"`
}

// DefaultStallTimeout bounds one write to the index. A healthy write
// takes milliseconds; Pebble stalls writes only while a flush or
// compaction catches up, which takes seconds even on a slow disk.
const DefaultStallTimeout = 60 * time.Second

// kvHealth is what Pebble reported about one database.
type kvHealth struct {
	logf func(string)

	mu         sync.Mutex
	background *Problem // first background error of this process
	corrupt    error    // writes refused: the index is damaged
	fatal      error    // Pebble gave up
	stuck      error    // a write was abandoned inside Pebble
	stallSince time.Time
	stallWhy   string
	logged     bool
	stored     bool // background was written as the Problem record

	down     chan struct{} // closed when fatal is set
	inflight atomic.Int64  // writes inside Pebble, abandoned ones included
}

func newKVHealth(logf func(string)) *kvHealth {
	if logf == nil {
		logf = func(s string) { fmt.Fprintf(os.Stderr, "citadelfs: %s\n", s) }
	}
	return &kvHealth{logf: logf, down: make(chan struct{})}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// logOnce logs the first thing worth saying; Pebble retries a failed
// compaction and would report the same failure many times.
func (h *kvHealth) logOnce(msg string) {
	if !h.logged {
		h.logged = true
		h.logf(msg)
	}
}

// isCorruption reports whether Pebble found damage. Its corruption mark
// does not survive every wrapping ("could not open table 000005: …
// checksum mismatch" has lost it), so the words it always uses count too.
func isCorruption(err error) bool {
	if errors.Is(err, pebble.ErrCorruption) || errors.Is(err, ErrCorrupt) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "checksum mismatch") || strings.Contains(msg, "pebble/table: invalid table") || strings.Contains(msg, "corrupt")
}

// onBackground is the EventListener's BackgroundError. It runs on a
// Pebble goroutine, perhaps under Pebble's locks: it only records.
func (h *kvHealth) onBackground(err error) (first *Problem) {
	h.mu.Lock()
	defer h.mu.Unlock()
	corrupt := isCorruption(err)
	if h.background == nil || corrupt && !h.background.Corrupt {
		h.background = &Problem{Time: time.Now().UTC(), Error: oneLine(err.Error()), Corrupt: corrupt}
		first = h.background
	}
	if corrupt && h.corrupt == nil {
		// Not logged: every write returns it from now on, and the
		// command prints it once.
		h.corrupt = corruptErr("a background compaction", err)
	} else if !corrupt {
		h.logOnce(fmt.Sprintf("index: a background flush or compaction failed: %s (recorded; `citadelfs check` verifies the index)", oneLine(err.Error())))
	}
	return first
}

func (h *kvHealth) onStall(why string) {
	h.mu.Lock()
	h.stallSince, h.stallWhy = time.Now(), why
	h.mu.Unlock()
}

func (h *kvHealth) onStallEnd() {
	h.mu.Lock()
	h.stallSince, h.stallWhy = time.Time{}, ""
	h.mu.Unlock()
}

// onFatal records Pebble giving up; the caller then parks.
func (h *kvHealth) onFatal(msg string) { h.onFatalCause(msg, nil) }

// onFatalCause is onFatal keeping cause (ErrDiskFull) in the error chain.
func (h *kvHealth) onFatalCause(msg string, cause error) {
	err := fmt.Errorf("index: Pebble stopped: %s (the index keeps everything synced before this; fix the cause, e.g. free space, and run the command again)", oneLine(msg))
	if cause != nil {
		err = fmt.Errorf("%w%w", err, hiddenCause{cause})
	}
	h.stop(err)
}

// stop makes err the answer to every call from now on.
func (h *kvHealth) stop(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fatal != nil {
		return
	}
	h.fatal = err
	close(h.down) // not logged: every call returns it, and the command prints it once
}

// writeErr is why writes are refused, or nil.
func (h *kvHealth) writeErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.fatal != nil:
		return h.fatal
	case h.stuck != nil:
		return h.stuck
	default:
		return h.corrupt
	}
}

func (h *kvHealth) fatalErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.fatal
}

// abandon records a write given up on while inside Pebble, and says why.
func (h *kvHealth) abandon(timeout time.Duration, cause error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var err error
	switch {
	case cause != nil:
		err = fmt.Errorf("index: a write was abandoned: %w", cause)
	case !h.stallSince.IsZero():
		err = fmt.Errorf("index: a write waited over %s in Pebble's write stall (%s)", timeout, h.stallWhy)
	default:
		err = fmt.Errorf("index: a write did not finish in %s (is the disk answering?)", timeout)
	}
	if h.background != nil {
		err = fmt.Errorf("%w; the last background error: %s", err, h.background.Error)
	}
	if h.stuck == nil {
		h.stuck = err // not logged: the write returns it
	}
	return err
}

// pebbleLogger is Pebble's Logger for one database: informational chatter
// stays off the user's terminal (what matters arrives through the event
// listener), and Fatalf is recorded, not an exit.
type pebbleLogger struct{ h *kvHealth }

func (pebbleLogger) Errorf(string, ...interface{}) {}

// walReplayed is the line Pebble logs after replaying a WAL (open.go).
const walReplayed = "[JOB %d] WAL file %s with log number %s stopped reading at offset: %d; replayed %d keys in %d batches"

// Infof is chatter, except the end of a WAL replay: Pebble reads a WAL up
// to its first bad record and takes that for a crash's torn tail, so a
// flipped bit in the middle dropped every later record without an error
// (a whole snapshot gone from the index, check passing, and prune then
// free to delete its packs). Here, before Pebble flushes what it replayed
// and lets the WAL go, the rest of the file is searched for an intact
// record of the same log: one there means damage, not a torn tail, and
// the open stops (the goroutine parks as in Fatalf, the WAL untouched on
// disk) with ErrCorrupt and the remedy, `repair index`.
func (l pebbleLogger) Infof(format string, args ...interface{}) {
	if format != walReplayed || len(args) < 4 {
		return
	}
	path, _ := args[1].(string)
	offset, _ := args[3].(int64)
	logNum, err := strconv.ParseUint(fmt.Sprint(args[2]), 10, 32)
	if path == "" || err != nil {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if at := intactChunkAfter(data, offset, uint32(logNum)); at >= 0 {
		l.h.stop(fmt.Errorf("index: the WAL %s is damaged at byte %d, and intact records follow at byte %d that Pebble would drop; run `citadelfs repair index` to rebuild the index from the packs: %w",
			filepath.Base(path), offset, at, ErrCorrupt))
		select {}
	}
}

// WAL chunk layout (Pebble's record package, recyclable format): within
// 32 KiB blocks, checksum u32 | length u16 | type u8 (5..8) | log number
// u32 | payload; the checksum is the masked CRC-32C of type, log number
// and payload.
const (
	walBlockSize  = 32 << 10
	walHeaderSize = 11
)

var walCRC = crc32.MakeTable(crc32.Castagnoli)

// intactChunkAfter returns the offset of the first intact chunk of log
// logNum after offset in data, or -1.
func intactChunkAfter(data []byte, offset int64, logNum uint32) int64 {
	for p := max(offset+1, 0); p+walHeaderSize <= int64(len(data)); p++ {
		if t := data[p+6]; t < 5 || t > 8 || binary.LittleEndian.Uint32(data[p+7:]) != logNum {
			continue
		}
		end := p + walHeaderSize + int64(binary.LittleEndian.Uint16(data[p+4:]))
		if end > int64(len(data)) || p/walBlockSize != (end-1)/walBlockSize {
			continue
		}
		c := crc32.Checksum(data[p+6:end], walCRC)
		if (c>>15|c<<17)+0xa282ead8 == binary.LittleEndian.Uint32(data[p:]) {
			return p
		}
	}
	return -1
}

// Fatalf must not return: Pebble calls it where it cannot go on, and
// would run on in a state it does not expect. The goroutine parks for
// good, holding whatever Pebble held; every caller waiting on it is woken
// by down with the error.
func (l pebbleLogger) Fatalf(format string, args ...interface{}) {
	l.h.onFatalCause(fmt.Sprintf(format, args...), fatalCause(args))
	select {}
}

// fatalCause is the first error among Fatalf's arguments that says the
// disk is full: Pebble passes its cause as an argument, and a full disk
// must stay one (IsDiskFull, exit 13) once formatted into the message.
func fatalCause(args []interface{}) error {
	for _, a := range args {
		if err, ok := a.(error); ok && IsDiskFull(err) {
			return ErrDiskFull
		}
	}
	return nil
}

// eventListener wires Pebble's events to kv.
func (kv *KV) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			if p := kv.h.onBackground(err); p != nil {
				go kv.storeProblem(p) // not on Pebble's goroutine: it may hold Pebble's locks
			}
		},
		WriteStallBegin: func(i pebble.WriteStallBeginInfo) { kv.h.onStall(i.Reason) },
		WriteStallEnd:   kv.h.onStallEnd,
	}
}

// storeProblem writes p as the Problem record, past the refusal of
// writes after damage (the record is what tells the monitor).
func (kv *KV) storeProblem(p *Problem) {
	<-kv.opened
	if kv.readOnly || kv.db == nil || kv.enter() != nil {
		return
	}
	defer kv.leave()
	v, _ := json.Marshal(p)
	b := kv.db.NewBatch()
	_ = b.Set(ProblemKey(), v, nil)
	if kv.commitBounded(b, true) == nil {
		kv.h.mu.Lock()
		kv.h.stored = true
		kv.h.mu.Unlock()
	}
}

// Problem is the background failure of this database: the one this
// process saw, else the stored record (nil: none).
func (kv *KV) Problem() (*Problem, error) {
	kv.h.mu.Lock()
	if p := kv.h.background; p != nil {
		cp := *p
		kv.h.mu.Unlock()
		return &cp, nil
	}
	kv.h.mu.Unlock()
	v, err := kv.Get(ProblemKey())
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Problem
	if err := json.Unmarshal(v, &p); err != nil {
		return &Problem{Error: "undecodable problem record: " + err.Error()}, nil
	}
	return &p, nil
}

// ClearProblem removes the stored Problem record, once a check has
// verified the whole index, unless this process has seen a background
// error itself.
func (kv *KV) ClearProblem() error {
	kv.h.mu.Lock()
	live := kv.h.background != nil
	kv.h.mu.Unlock()
	if live {
		return nil
	}
	if ok, err := kv.Has(ProblemKey()); err != nil || !ok {
		return err
	}
	return kv.Delete(ProblemKey(), true)
}

// SetInterrupt makes writes waiting inside Pebble give up when done is
// closed (a command's context on SIGTERM): a write stall must not make
// the process ignore a signal.
func (kv *KV) SetInterrupt(done <-chan struct{}) { kv.interrupt.Store(&done) }

// commitBounded commits b (and closes it) within the stall timeout,
// giving up early on interrupt or when Pebble stops.
func (kv *KV) commitBounded(b *pebble.Batch, sync bool) error {
	done := make(chan error, 1)
	kv.h.inflight.Add(1)
	go func() {
		err := b.Commit(writeOpts(sync))
		b.Close()
		kv.h.inflight.Add(-1)
		done <- err
	}()
	var interrupt <-chan struct{}
	if p := kv.interrupt.Load(); p != nil {
		interrupt = *p
	}
	timer := time.NewTimer(kv.stallTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return kvErr("commit", err)
		}
		return nil
	case <-kv.h.down:
		return kv.h.fatalErr()
	case <-timer.C:
		return kv.giveUp(done, nil)
	case <-interrupt:
		// A healthy write still finishes: what a command records on
		// its way out after the signal (its attempt, the daemon's
		// records) must not fail for it. Only one stuck in Pebble is
		// given up on.
		grace := time.NewTimer(interruptGrace)
		defer grace.Stop()
		select {
		case err := <-done:
			if err != nil {
				return kvErr("commit", err)
			}
			return nil
		case <-kv.h.down:
			return kv.h.fatalErr()
		case <-grace.C:
			return kv.giveUp(done, context.Canceled)
		}
	}
}

// interruptGrace is how long a write may still take once the interrupt
// closed: far above a healthy write, well inside the seconds a command
// has to answer SIGTERM.
const interruptGrace = 2 * time.Second

// giveUp abandons a write, unless it has just finished after all.
func (kv *KV) giveUp(done <-chan error, cause error) error {
	select {
	case err := <-done:
		if err != nil {
			return kvErr("commit", err)
		}
		return nil
	default:
		return kv.h.abandon(kv.stallTimeout, cause)
	}
}

// hiddenCause puts an error in a chain without adding to the message.
type hiddenCause struct{ err error }

func (h hiddenCause) Error() string { return "" }
func (h hiddenCause) Unwrap() error { return h.err }
