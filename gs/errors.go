package gs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Error reports a failed GCS request with the operation, bucket and key
// it concerned. The wrapped error carries the server's message.
// errors.Is(err, os.ErrNotExist) holds for a missing object and
// errors.Is(err, os.ErrPermission) for 401/403 answers.
type Error struct {
	Op     string
	Bucket string
	Key    string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("gs: %s gs://%s/%s: %s", e.Op, e.Bucket, e.Key, describe(e.Err))
}

func (e *Error) Unwrap() error { return e.Err }

// APIError is a non-2xx answer from GCS: its status code and what the
// server said, taken from the JSON error body (or the text of a
// non-JSON one, as the emulator sends for downloads).
type APIError struct {
	Code    int
	Message string
	Reason  string

	// objectMissing is set by object reads whose 404 means "no such
	// object" (a listing's 404 means a missing bucket instead).
	objectMissing bool
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	s := fmt.Sprintf("HTTP %d: %s", e.Code, msg)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s
}

// Is maps the status onto the os errors callers test for.
func (e *APIError) Is(target error) bool {
	switch target {
	case os.ErrNotExist:
		return e.objectMissing && e.Code == http.StatusNotFound
	case os.ErrPermission:
		return e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden
	}
	return false
}

// retriesExhausted wraps the last error of a request that failed on
// every one of its attempts.
type retriesExhausted struct {
	attempts int
	err      error
}

func (e *retriesExhausted) Error() string {
	return fmt.Sprintf("%s; gave up after %d attempts", describe(e.err), e.attempts)
}

func (e *retriesExhausted) Unwrap() error { return e.err }

func httpCode(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// describe renders an error on one line. A transport error loses its
// "Get <url>:" prefix: the Error around it names bucket and key already.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil && err == error(ue) {
		err = ue.Err
	}
	return oneLine(err.Error())
}

// maxMessage bounds how much of a server's message goes into an error.
const maxMessage = 512

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		s = s[:maxMessage] + "..."
	}
	return s
}

// readAPIError builds an APIError from a failed response and closes its
// body. GCS sends {"error":{"code":..,"message":..,"errors":[{"reason":..}]}}.
func readAPIError(resp *http.Response) *APIError {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	ae := &APIError{Code: resp.StatusCode}
	var body struct {
		Error struct {
			Message string `json:"message"`
			Errors  []struct {
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"errors"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil {
		ae.Message = body.Error.Message
		if len(body.Error.Errors) > 0 {
			ae.Reason = body.Error.Errors[0].Reason
			if ae.Message == "" {
				ae.Message = body.Error.Errors[0].Message
			}
		}
	} else {
		ae.Message = string(b)
	}
	ae.Message = oneLine(ae.Message)
	return ae
}
