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

# Short fuzz runs of every decoder of on-disk bytes.
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzDecodeTree -fuzztime=20s ./snapshot/
	$(GO) test -run=^$$ -fuzz=FuzzDecodeTrailer -fuzztime=20s ./index/
	$(GO) test -run=^$$ -fuzz=FuzzDecodeBlobRef -fuzztime=10s ./index/
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=20s ./snapshot/codec/

# Side-by-side with restic and borg on a 2 GiB corpusgen tree (see bench/).
bench: build
	bash bench/bench.sh

# One command on a fresh machine: build, make a small demo corpus, snapshot,
# list, restore, verify, and show the mount if FUSE is available.
demo: build
	bash scripts/demo.sh

clean:
	rm -rf bin .demo .bench
