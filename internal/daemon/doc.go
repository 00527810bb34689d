// Package daemon is the mount daemon's control socket. Pebble admits one process, so while `citadelfs
// mount` runs it owns the repository and every delegable command started
// by a timer or by hand runs inside it, on behalf of the client process.
//
// Protocol (version 1) on the unix stream socket <repo>/daemon.sock, mode
// 0600 and checked with SO_PEERCRED both ways: the daemon admits clients
// of its own uid only (root, so a non-root client can ask it nothing, and
// what a restore may write is never decided for another user), and a
// client sends nothing until the server has proven to run as root or as
// the repository's owner (checkServer). Every message is a frame, one
// type byte, a 4-byte big-endian length and the payload.
//
//	client → daemon  'r' request: JSON daemonRequest (args, cwd, terminal)
//	daemon → client  'o' stdout bytes, 'e' stderr bytes, as the command writes
//	daemon → client  'x' exit code (4-byte big-endian), then the daemon closes
//
// The daemon hands the request to its Runner (cmd/citadelfs runs the same
// command in-process, with the open repository and the client's working
// directory, against which relative paths resolve). A client that is
// interrupted shuts its writing half: the daemon cancels that command's
// context, the command reports "interrupted" and the exit code as usual,
// and the client prints it (a client that vanishes cancels the same way).
// Concurrent clients each get their own goroutine, streams and exit code;
// the repository serialises writers itself.
//
// This package is the socket, the framing and the trust checks both ways;
// what a request means (which commands, their exit codes and messages) is
// the Runner's and the caller's: it imports no project package.
package daemon
