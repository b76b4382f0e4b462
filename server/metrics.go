package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsServer serves Prometheus metrics from the default registry at
// /metrics, and Go's profiler at /debug/pprof/* when enabled.
type MetricsServer struct {
	ln  net.Listener
	srv *http.Server
}

// ServeMetrics listens on addr exactly as given: "127.0.0.1:9090" is
// loopback only, ":9090" every interface (upstream logs that case as
// localhost but also binds every interface). A port is required; port 0
// picks a free one (see Addr).
func ServeMetrics(addr string, enablePProf bool, logger *slog.Logger) (*MetricsServer, error) {
	if _, port, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("addr %q: %w", addr, err)
	} else if port == "" {
		return nil, fmt.Errorf("addr %q: a port is required", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.Handler())
	if enablePProf {
		registerPProf(mux)
	}
	s := &MetricsServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
	logger.Info("serving metrics", "addr", ln.Addr().String(), "pprof", enablePProf)
	return s, nil
}

// Addr returns the address the server listens on.
func (s *MetricsServer) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting scrapes in flight finish within ctx.
func (s *MetricsServer) Close(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}
