// Command corpusgen writes the deterministic AI-server tree that `make
// demo`, the end-to-end tests and `make bench` back up, and changes it the
// way a server changes between two backups (see internal/corpusgen):
//
//	corpusgen -out /tmp/src -models-mb 2048            # create
//	corpusgen -out /tmp/src -mutate day -seed 2        # one day's change
//	corpusgen -out /tmp/src -mutate finetune -model mixtral -seed 3
//
// It prints one line per change a mutation made. Exit status: 0 done, 1
// the tree could not be written or changed, 2 a bad flag.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"citadelfs/internal/corpusgen"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("corpusgen", flag.ContinueOnError)
	out := fs.String("out", "", "directory to create or mutate (required)")
	modelsMB := fs.Int("models-mb", 1024, "total size of the model weights in MiB")
	logsMB := fs.Int("logs-mb", 64, "total size of the logs in MiB")
	configs := fs.Int("configs", 2000, "number of config files")
	shardMB := fs.Int("shard-mb", 128, "largest safetensors shard in MiB")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same bytes")
	mutate := fs.String("mutate", "", "change an existing tree: "+strings.Join(corpusgen.Mutations, ", "))
	model := fs.String("model", "", "the model finetune and insert-shift change (or new-model copies); default: picked by the seed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "corpusgen: -out DIR is required, and no arguments besides the flags")
		return 2
	}
	o := corpusgen.Options{Dir: *out, ModelsMB: *modelsMB, LogsMB: *logsMB, Configs: *configs, ShardMB: *shardMB, Seed: *seed}
	if *mutate == "" {
		if err := corpusgen.Generate(o); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	lines, err := corpusgen.Mutate(o, corpusgen.Mutation{Kind: *mutate, Model: *model})
	for _, l := range lines {
		fmt.Println(l)
	}
	switch {
	case errors.Is(err, corpusgen.ErrUnknownMutation):
		fmt.Fprintln(os.Stderr, err)
		return 2
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
