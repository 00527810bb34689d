# citadelfs — see README.md.
export CGO_CFLAGS := -Wno-deprecated-declarations
GO ?= go
BIN := bin/citadelfs

.PHONY: build test test-unit test-e2e bench demo fuzz vet clean

build:
	$(GO) build -o $(BIN) ./cmd/citadelfs

vet:
	$(GO) vet ./...

# Unit tests (with the race detector on the concurrent packages), then the
# end-to-end tests in tests/, which build and run the real binary.
test: build
	$(GO) vet ./...
	$(GO) test -race -timeout 300s ./index/... ./snapshot/... ./fs/... ./monitor/... ./cmd/...
	$(GO) test -timeout 300s ./internal/...
	$(GO) test -count=1 -timeout 400s ./tests/...

test-unit:
	$(GO) test -race ./index/... ./snapshot/... ./fs/... ./monitor/... ./cmd/...
	$(GO) test ./internal/...

test-e2e: build
	$(GO) test -v -timeout 400s ./tests/...

# Short fuzz runs of every fuzzer in the tree, each anchored (go test
# -fuzz takes a regexp and refuses one that matches two). FUZZERS lists
# package:Name; the first step fails if a Fuzz* in the tree is missing
# from it, so a new fuzzer cannot be left out. FUZZTIME=2s for a quick try.
FUZZTIME ?= 20s
FUZZERS := \
	./snapshot/:FuzzDecodeTree ./snapshot/:FuzzDecodeManifest \
	./snapshot/codec/:FuzzDecode ./snapshot/codec/:FuzzRoundTrip \
	./snapshot/codec/:FuzzHuffFast ./snapshot/codec/:FuzzMerge2Split2 \
	./index/:FuzzDecodeTrailer ./index/:FuzzDecodeBlobRef ./index/:FuzzDecodeDamaged

fuzz:
	@missing=$$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/^func //' | sort -u | \
		while read f; do case " $(FUZZERS) " in *":$$f "*) ;; *) echo $$f;; esac; done); \
	if [ -n "$$missing" ]; then echo "make fuzz: add to FUZZERS:" $$missing >&2; exit 1; fi
	@set -e; for pf in $(FUZZERS); do \
		echo "fuzz $${pf#*:} in $${pf%%:*}"; \
		$(GO) test -run='^$$' -fuzz="^$${pf#*:}$$" -fuzztime=$(FUZZTIME) "$${pf%%:*}"; \
	done

# Side-by-side with restic and borg on a 2 GiB corpusgen tree (see bench/).
bench: build
	bash bench/bench.sh

# One command on a fresh machine: build, make a small demo corpus, snapshot,
# list, restore, verify, and show the mount if FUSE is available.
demo: build
	bash scripts/demo.sh

clean:
	rm -rf bin .demo .bench
