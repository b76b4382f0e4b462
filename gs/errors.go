package gs

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
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

// Is maps storage's sentinels and HTTP codes onto the os errors callers
// test for.
func (e *Error) Is(target error) bool {
	switch target {
	case os.ErrNotExist:
		return errors.Is(e.Err, storage.ErrObjectNotExist)
	case os.ErrPermission:
		code := httpCode(e.Err)
		return code == http.StatusUnauthorized || code == http.StatusForbidden
	}
	return false
}

func httpCode(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// describe renders an error on one line: googleapi errors as
// "HTTP <code>: <message> (<reason>)", others as they are.
func describe(err error) string {
	var ge *googleapi.Error
	if !errors.As(err, &ge) {
		return err.Error()
	}
	msg, reason := ge.Message, ""
	if len(ge.Errors) > 0 {
		reason = ge.Errors[0].Reason
		if msg == "" {
			msg = ge.Errors[0].Message
		}
	}
	if msg == "" {
		msg = http.StatusText(ge.Code)
	}
	s := fmt.Sprintf("HTTP %d: %s", ge.Code, msg)
	if reason != "" {
		s += " (" + reason + ")"
	}
	// The retry loop's own wrapping is dropped above; keep its count.
	if m := retriesGivenUp.FindStringSubmatch(err.Error()); m != nil {
		s += "; gave up after " + m[1] + " attempts"
	}
	return s
}

var retriesGivenUp = regexp.MustCompile(`^storage: retry failed after (\d+) attempts`)
