package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The metrics HTTP server, written once for both commands that serve a
// running monitor's Prometheus /metrics on --metrics-listen: mount (the
// daemon's monitor) and monitor (the foreground loop). Both check the
// address before they start anything (checkListen: a typo is exit 2),
// and both serve and stop it the same way (serveMetrics).

// metricsShutdownGrace bounds how long a stopping command waits for a
// scrape in flight.
const metricsShutdownGrace = 5 * time.Second

// serveMetrics validates addr, listens on it and serves h until the
// returned stop is called. cmd names the command in the error of a
// listen that fails (the port taken: exit 1, like any failure to start).
func serveMetrics(cmd, addr string, h http.Handler) (net.Addr, func(), error) {
	if err := checkListen(addr); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: --metrics-listen: %w", cmd, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownGrace)
		defer cancel()
		srv.Shutdown(ctx)
	}
	return ln.Addr(), stop, nil
}

// checkListen validates --metrics-listen before anything is mounted, so a
// typo is a usage error (exit 2), not a failure after the mount is up.
func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--metrics-listen %q: %v (want HOST:PORT, e.g. 127.0.0.1:9464)", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return usagef("--metrics-listen %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return usagef("--metrics-listen %q: %q is not an IP address or host name", addr, host)
	}
	return nil
}

// validHostname reports whether h looks like a DNS name (letters, digits,
// '-' and '.'); whether it resolves is for the listen to find out.
func validHostname(h string) bool {
	for _, r := range h {
		if !(r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return strings.Trim(h, ".-") != "" && !isAllDigitsAndDots(h)
}

// isAllDigitsAndDots catches 999.1.1.1, which is no IP address and no name.
func isAllDigitsAndDots(h string) bool {
	for _, r := range h {
		if r != '.' && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
