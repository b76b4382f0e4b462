package gs

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"
)

// errNoReplay is returned by a request builder whose body cannot be sent
// again; the previous attempt's error then stands.
var errNoReplay = errors.New("request body cannot be replayed")

// do sends the request newReq builds, once per attempt, until GCS answers
// 2xx, answers something not worth retrying, or MaxAttempts tries have
// failed. It returns the 2xx response or an error: an *APIError for an
// answer, the transport's error otherwise, wrapped in retriesExhausted
// when the attempts ran out. Every write names an immutable file with
// fixed content (the lease carries a generation precondition), so
// retrying writes and deletes is as safe as retrying reads.
func (c *ReplicaClient) do(ctx context.Context, hc *http.Client, newReq func(context.Context) (*http.Request, error)) (*http.Response, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		req, err := newReq(ctx)
		if errors.Is(err, errNoReplay) && lastErr != nil {
			return nil, lastErr
		} else if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			if !retryableTransportError(err) {
				return nil, err
			}
			lastErr = err
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			return resp, nil
		default:
			ae := readAPIError(resp)
			if !retryableStatus(ae.Code) {
				return nil, ae
			}
			lastErr = ae
		}
		if attempt >= c.cfg.MaxAttempts {
			if attempt == 1 {
				return nil, lastErr
			}
			return nil, &retriesExhausted{attempts: attempt, err: lastErr}
		}
		if err := sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, err
		}
	}
}

// backoff returns the pause after the given failed attempt: exponential
// from InitialBackoff up to DefaultMaxBackoff, with full jitter in its
// upper half so that parallel deletes do not retry in lockstep.
func (c *ReplicaClient) backoff(attempt int) time.Duration {
	d := c.cfg.InitialBackoff
	for i := 1; i < attempt && d < DefaultMaxBackoff; i++ {
		d *= 2
	}
	d = min(d, DefaultMaxBackoff)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryableStatus reports the answers GCS documents as transient:
// request timeout, rate limiting and server errors.
func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// retryableTransportError reports connection failures (refused, reset,
// closed mid-response, timeouts, DNS) as opposed to errors of our own
// making (a bad URL, a body that failed to read, a credentials problem).
func retryableTransportError(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, errBodySource) {
		return false // the LTX reader failed: not the network's fault
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &ne):
		return true
	}
	return false
}
