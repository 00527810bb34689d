// Package corpusgen writes a deterministic, AI-server-shaped source tree
// for the demo, the end-to-end tests and the bench, and changes it the way
// a real server changes between two backups. The project owns it so that
// `make demo`, `make test` and `make bench` run on a clone with nothing
// beside it.
//
// # Layout
//
// One tree has the three sources of an AI server (its
// /mnt/citadel-models/active, /opt/citadel/configs and /opt/citadel/logs):
//
//	models/<name>/model-0000i-of-0000n.safetensors   bf16 shards
//	models/<name>/model.safetensors.index.json       tensor -> shard map
//	models/<name>/{config,generation_config,tokenizer,tokenizer_config}.json
//	configs/svcNN/partK/<word>-NNNN.{yaml,json,ini,env,conf,toml}
//	configs/...  edge cases (see below)
//	logs/citadel-<service>.log, some rotated as .1.gz
//	logs/access/<model>.jsonl, logs/monitoring/{collector.log,gpu.csv}
//
// # Weights
//
// Shards are real safetensors files (little-endian u64 header length, a
// JSON header padded to 8 bytes, then the tensors back to back) of a
// Llama-shaped model: embeddings, per layer q/k/v/o (grouped-query, k and
// v a quarter of q), gate/up/down MLP and two RMS norms, a final norm and
// an lm_head. Values are what a trained checkpoint holds, rounded to bf16
// the way PyTorch does (round to nearest even from float32): linear
// weights are N(0, σ) with σ growing with depth and a heavy tail (about
// one value in a thousand is an outlier of 6-20σ), norm weights sit
// around 1.0, embeddings are N(0, 0.02). This matters: the bf16 codec's
// ratio depends on the exponent byte's entropy, which a uniform or
// constant fill would get wrong.
//
// Each model gets a share of Options.ModelsMB; its hidden size shrinks
// for a small share so that even a 8 MiB tree has every model with a
// whole layer, and shards are cut at ShardMB like Hugging Face's
// max_shard_size.
//
// # Edge cases in configs/
//
// A 0600 secret (citadel-ai.env), an empty file, an empty 0750
// directory, a symlink to a directory (current -> svc00/part0), a
// dangling symlink, a hardlink pair (hardlink-a.yaml, hardlink-b.yaml),
// an executable hook, a sparse disk image (256 MiB apparent, 1.06 MiB of
// data), names with spaces, quotes and non-ASCII letters, a 250-byte
// name, a 24-level deep path, and user.* extended attributes on a file
// and a directory (skipped where the file system has none). The tests
// name some of these paths; they are part of the contract.
//
// # Determinism
//
// The same Options (seed included) give the same bytes, modes, mtimes,
// link targets and xattrs, on any machine and at any GOMAXPROCS: every
// random stream is a PCG seeded from the seed and the thing it fills (a
// tensor's name and 1 MiB segment, a file's index), never shared between
// goroutines. Mutations are deterministic too, given the tree and the
// seed. Exact bytes may change between Go releases (math/rand/v2 does not
// promise its streams across versions) and between versions of this
// package; the tests compare two runs, never stored hashes.
//
// # Mutations
//
//	day            logs-append + configs-touch
//	logs-append    256 KiB more in each service log
//	configs-touch  ~1% of the config files get a line appended
//	finetune       one shard's consecutive tensors (5% of it) updated in
//	               place by a small delta, as merging a fine-tune does
//	new-model      a model whose attention tensors are copied from an
//	               existing model's files, in another order, MLP new
//	insert-shift   one shard's JSON header grows: every tensor byte moves
//
// finetune and insert-shift pick their shard from the seed, or from the
// model named in Mutation.Model.
package corpusgen
