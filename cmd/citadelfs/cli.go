package main

// The CLI's conventions beyond each command's own file: how many
// positional arguments a command takes, whether it prints --json, and the
// examples its help shows. They live in one table rather than in each
// cmd_*.go so that help, completion and the man page are generated from
// one place, and so that a check over every command (TestCLISpecs) sees
// them all.
//
// Why not cobra: cobra would give completion, man pages and help for free,
// but moving every command onto it rewrites every cmd_*.go at once, while
// those files change daily. The hand-rolled registry over pflag (main.go)
// already has what cobra's model needs (a name, a summary, a usage line,
// a flag set per command), so completion (completion.go) and the man page
// (manpage.go) are generated from it here. Moving to cobra stays possible
// later, one command at a time, without changing any flag or output.

// cliSpec is one command's row of the table.
type cliSpec struct {
	// maxArgs is the most positional arguments the command takes (-1: any).
	// More is a usage error before the command runs: a stray argument
	// (`snapshots extra`) is a mistake, never silently ignored.
	maxArgs int
	// json says whether the command has --json output. One that has none
	// does not define the flag, so --json is a usage error.
	json bool
	// examples are shown by `citadelfs help CMD`, `CMD --help` and the
	// man page.
	examples []example
	// argKind says what completion offers for positional arguments.
	argKind argKind
}

type example struct{ cmd, why string }

type argKind int

const (
	argNone     argKind = iota
	argFile             // paths
	argCommand          // a command name (help)
	argWords            // fixed words, from words
	argSnapshot         // snapshot ids (completion offers "latest")
)

// anyArgs is maxArgs for commands that take a list.
const anyArgs = -1

var cliSpecs = map[string]cliSpec{
	"check": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs check", "verify the index, packs and every snapshot's tree"},
		{"citadelfs check --read-data --subset 10%", "also read and hash a tenth of the packs"},
	}},
	"completion": {maxArgs: 1, argKind: argWords, examples: []example{
		{"citadelfs completion bash > /etc/bash_completion.d/citadelfs", "complete commands, flags and arguments in bash"},
		{"citadelfs completion zsh > \"${fpath[1]}/_citadelfs\"", "the same for zsh"},
		{"citadelfs completion fish > ~/.config/fish/completions/citadelfs.fish", "and for fish"},
	}},
	"config": {maxArgs: 1, json: true, argKind: argWords, examples: []example{
		{"citadelfs config check", "check /etc/citadelfs/config.yaml and print the effective configuration"},
		{"citadelfs config check --config ./config.yaml --json", "the same as JSON, for another file"},
	}},
	"copy": {maxArgs: anyArgs, json: true, argKind: argSnapshot, examples: []example{
		{"citadelfs copy --to s3://backups/gpu01 --s3-endpoint http://rgw:7480", "copy every snapshot the bucket lacks (only the chunks it lacks)"},
		{"citadelfs --repo s3://backups/gpu01 copy --to /backup/citadel latest", "bring the newest snapshot back to a local disk"},
	}},
	"migrate": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs init --repo /backup/citadel2 --password-file /etc/citadelfs/pw && citadelfs --repo /backup/citadel migrate --to /backup/citadel2 --password-file /etc/citadelfs/pw",
			"turn a version 1 repository (in the clear) into a new encrypted one: every snapshot copied (re-chunked under the new key), then verified against its source; the clear source needs no passphrase, so --password-file opens the target"},
	}},
	"diff": {maxArgs: 2, json: true, argKind: argSnapshot, examples: []example{
		{"citadelfs diff 3fa2c1 latest", "what changed between snapshot 3fa2c1 and the newest"},
		{"citadelfs diff --json 3fa2c1 7be901", "the changes as JSON"},
	}},
	"find": {maxArgs: anyArgs, json: true, examples: []example{
		{"citadelfs find '*.safetensors'", "every snapshot's files with that name, snapshot by snapshot"},
		{"citadelfs find --snapshot latest -l 'config.json'", "only in the newest, with sizes and times"},
		{"citadelfs find '/models/llama/*'", "a pattern with a / matches the path from /LABEL"},
	}},
	"forget": {maxArgs: anyArgs, json: true, argKind: argSnapshot, examples: []example{
		{"citadelfs forget --dry-run", "show what the configured retention would remove"},
		{"citadelfs forget --keep-daily 7 --keep-weekly 4 --prune", "apply a policy, then delete unreferenced data"},
		{"citadelfs forget 3fa2c1", "remove one snapshot by id prefix"},
	}},
	"help": {maxArgs: 1, argKind: argCommand, examples: []example{
		{"citadelfs help snapshot", "the flags and examples of one command"},
	}},
	"key": {maxArgs: 2, json: true, argKind: argWords, examples: []example{
		{"citadelfs key list", "the key slots: id, kind, when and where each was made, which one opened this command"},
		{"citadelfs key add --new-key-file /root/citadel.key --comment robot", "a key-file slot beside the passphrase (the file is made when missing)"},
		{"citadelfs key passwd --new-password-file /root/new-pass", "change the passphrase: a new slot, then the old one removed; no data is rewritten"},
		{"citadelfs key remove 1a2b3c4d", "remove a slot by the id key list shows"},
	}},
	"init": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs init --repo /backup/citadel --password-file /etc/citadelfs/password", "create an encrypted repository (aes-256-gcm, the default)"},
		{"citadelfs init --repo /backup/citadel --encryption none", "create a local repository in the clear"},
		{"citadelfs init --repo /backup/citadel --reserve 2GiB", "with a larger space reserve for forget/prune on a full disk"},
	}},
	"monitor": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs monitor --once", "one sample: print every violated condition, exit 5 if one is critical"},
		{"citadelfs monitor --metrics-listen 127.0.0.1:9473", "run, and serve Prometheus /metrics"},
	}},
	"ls": {maxArgs: 1, json: true, argKind: argSnapshot, examples: []example{
		{"citadelfs ls latest", "every file of each source's newest snapshot"},
		{"citadelfs ls -l 3fa2c1:models/llama", "one directory, as ls -l shows it"},
		{"citadelfs ls --recursive=false latest:configs", "only the entries of one directory"},
	}},
	"man": {maxArgs: 0, examples: []example{
		{"citadelfs man | man -l -", "read the manual page"},
		{"citadelfs man > /usr/local/share/man/man1/citadelfs.1", "install it"},
	}},
	"mount": {maxArgs: 1, argKind: argFile, examples: []example{
		{"citadelfs mount /mnt/citadel", "serve every snapshot at /mnt/citadel/snapshots/ID/LABEL/..."},
		{"citadelfs --repo /backup/citadel mount --allow-other /mnt/citadel", "let other users read it too"},
		{"citadelfs --repo s3://backups/fleet --s3-endpoint http://rgw:7480 mount /mnt/citadel", "a bucket several hosts back up into: hosts/HOST/latest/ is each one's newest"},
	}},
	"prune": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs prune --dry-run", "say what would be freed"},
		{"citadelfs prune --json", "free it and print the counts as JSON"},
	}},
	"repair": {maxArgs: anyArgs, json: true, argKind: argWords, examples: []example{
		{"citadelfs repair index", "rebuild the index from the packs"},
		{"citadelfs repair packs --dry-run", "say which damaged packs' chunks could be salvaged"},
		{"citadelfs repair snapshots --forget", "rewrite snapshots that lost data, forgetting the originals"},
	}},
	"restore": {maxArgs: 2, json: true, argKind: argSnapshot, examples: []example{
		{"citadelfs restore latest /srv/restore", "restore the newest snapshot into /srv/restore"},
		{"citadelfs restore 3fa2c1:models/llama /srv/llama", "one directory of one source"},
	}},
	"snapshot": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs snapshot", "snapshot the sources in the configuration file"},
		{"citadelfs snapshot --source models=/srv/models --tag nightly", "one source, tagged"},
		{"citadelfs snapshot --json --quiet", "for scripts: the summary as JSON, no progress"},
	}},
	"snapshots": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs snapshots", "list every snapshot"},
		{"citadelfs snapshots --tag nightly --source models", "the nightly snapshots that have the models source"},
		{"citadelfs snapshots --host gpu01 --path /srv/models", "those of one host and directory"},
		{"citadelfs --repo /backup/citadel snapshots --json", "as JSON, from another repository"},
	}},
	"status": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs status", "system, GPUs, services, alerts and backups, once"},
		{"citadelfs status --watch --interval 5s", "full-screen dashboard redrawn every five seconds; q quits"},
		{"citadelfs status --watch | tee status.log", "not a terminal: plain frames, no colour"},
	}},
	"systemd": {maxArgs: 0, examples: []example{
		{"citadelfs systemd", "print the units"},
		{"citadelfs systemd --install", "write them to /etc/systemd/system"},
	}},
	"test-restore": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs test-restore", "restore 20 files of each source's newest snapshot to a temporary directory and compare"},
		{"citadelfs test-restore --sample 5% --source models", "a twentieth of one source's files"},
	}},
	"version": {maxArgs: 0, json: true, examples: []example{
		{"citadelfs version", "the release, commit and Go version of this binary"},
		{"citadelfs version --json", "the same as JSON"},
	}},
}

// argWordsOf are the fixed first arguments of argWords commands, for
// completion.
var argWordsOf = map[string][]string{
	"completion": {"bash", "zsh", "fish"},
	"config":     {"check"},
	"repair":     {"index", "packs", "snapshots"},
	"key":        {"list", "add", "remove", "passwd"},
}

// specOf returns c's row; a command without one (tests register their own)
// takes any arguments and --json.
func specOf(name string) cliSpec {
	if s, ok := cliSpecs[name]; ok {
		return s
	}
	return cliSpec{maxArgs: anyArgs, json: true}
}
