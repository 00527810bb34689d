package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ModelSource probes the model services. A service that is down is data
// (ModelStatus.State), not an error.
type ModelSource interface {
	Models(ctx context.Context) ([]ModelStatus, error)
}

// HTTPModelOptions configure NewHTTPModels.
type HTTPModelOptions struct {
	// Models maps a service name to its port on Host.
	Models map[string]int
	// Host the services listen on (default 127.0.0.1).
	Host string
	// Client makes the requests (default: keep-alive client, no proxy).
	Client *http.Client
	// Timeout bounds each request (default 5s).
	Timeout time.Duration
	// Clock times the requests (default time.Now).
	Clock func() time.Time
}

func (o HTTPModelOptions) withDefaults() HTTPModelOptions {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Client == nil {
		o.Client = defaultHTTPClient()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// defaultHTTPClient keeps connections to the model servers alive between
// cycles (a TCP handshake per probe is most of a probe's cost) and never
// goes through a proxy: these are local services.
func defaultHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       3 * time.Minute,
			ResponseHeaderTimeout: 30 * time.Second,
			DisableCompression:    true,
		},
		// A /health that redirects elsewhere is not healthy by proxy.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type modelTarget struct {
	name string
	port int
	base string
}

type httpModels struct {
	o       HTTPModelOptions
	targets []modelTarget
}

// NewHTTPModels returns the ModelSource that GETs /health and /metrics.
func NewHTTPModels(o HTTPModelOptions) ModelSource {
	o = o.withDefaults()
	h := &httpModels{o: o}
	for name, port := range o.Models {
		h.targets = append(h.targets, modelTarget{name, port, "http://" + net.JoinHostPort(o.Host, strconv.Itoa(port))})
	}
	sort.Slice(h.targets, func(i, j int) bool { return h.targets[i].name < h.targets[j].name })
	return h
}

// Models probes every service at once; the cycle takes as long as the
// slowest probe, at most about two timeouts.
func (h *httpModels) Models(ctx context.Context) ([]ModelStatus, error) {
	out := make([]ModelStatus, len(h.targets))
	var wg sync.WaitGroup
	for i, t := range h.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = h.probe(ctx, t)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("monitor: models: %w", err)
	}
	return out, nil
}

func (h *httpModels) probe(ctx context.Context, t modelTarget) ModelStatus {
	st := ModelStatus{Name: t.name, Port: t.port, URL: t.base + "/health"}
	start := h.o.Clock()
	code, err := h.get(ctx, st.URL)
	st.LatencySeconds = h.o.Clock().Sub(start).Seconds()
	switch {
	case err != nil:
		st.State, st.Error = classify(err, h.o.Timeout)
		return st
	case code < 200 || code > 299:
		st.State, st.HTTPStatus = ModelUnhealthy, code
		st.Error = fmt.Sprintf("/health answered HTTP %d", code)
	default:
		st.State, st.HTTPStatus = ModelHealthy, code
	}
	// The server answers; say whether it also exports metrics.
	mcode, err := h.get(ctx, t.base+"/metrics")
	present := err == nil && mcode >= 200 && mcode <= 299
	st.Metrics = &present
	return st
}

// get fetches url and returns its status. Only a little of the body is
// read: enough to let the connection be reused for small answers, never a
// whole large /metrics page.
func (h *httpModels) get(ctx context.Context, url string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", "citadelfs-monitor")
	resp, err := h.o.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 16<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// classify turns a transport error into a state and a short reason.
func classify(err error, timeout time.Duration) (state, reason string) {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return ModelTimeout, fmt.Sprintf("/health gave no answer within %s", timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return ModelDown, "connection refused (nothing listens on the port)"
	case errors.Is(err, context.Canceled):
		return ModelError, "probe cancelled"
	}
	return ModelError, "/health: " + err.Error()
}
