package abs

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// Error reports a failed Azure request with the operation, account,
// container and blob (or prefix) it concerned, and what the server said:
// HTTP status, Azure error code and the first line of its message.
// errors.Is(err, os.ErrNotExist) holds for a missing blob and
// errors.Is(err, os.ErrPermission) for 401/403 answers; errors.As to
// *azcore.ResponseError still works.
//
// The message never contains a request URL's query, where a SAS token
// would be.
type Error struct {
	Op         string
	Account    string
	Container  string
	Key        string
	StatusCode int    // 0 when no response was received
	Code       string // Azure error code, e.g. AuthorizationPermissionMismatch
	Message    string // the server's message, or the transport error
	Err        error
}

func newError(op, account, containerName, key string, err error) *Error {
	e := &Error{Op: op, Account: account, Container: containerName, Key: key, Err: err}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		e.StatusCode, e.Code = re.StatusCode, re.ErrorCode
		e.Message = serverMessage(re)
	} else {
		e.Message = redactURLs(err)
	}
	return e
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "abs: %s account=%s container=%s key=%s: ", e.Op, e.Account, e.Container, e.Key)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
		if e.Code != "" {
			fmt.Fprintf(&b, " %s", e.Code)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Is maps Azure answers onto the os errors callers test for.
func (e *Error) Is(target error) bool {
	switch target {
	case os.ErrNotExist:
		return e.Code == string(bloberror.BlobNotFound)
	case os.ErrPermission:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	}
	return false
}

var xmlMessage = regexp.MustCompile(`(?s)<Message>(.*?)</Message>`)

// serverMessage returns the first line of the XML <Message> of an error
// response (the rest is a request ID and a time), or the status text
// for bodiless answers such as HEAD.
func serverMessage(re *azcore.ResponseError) string {
	if re.RawResponse != nil {
		if body, err := runtime.Payload(re.RawResponse); err == nil {
			if m := xmlMessage.FindSubmatch(body); m != nil {
				line, _, _ := strings.Cut(strings.TrimSpace(string(m[1])), "\n")
				return strings.TrimSpace(line)
			}
		}
	}
	if t := http.StatusText(re.StatusCode); t != "" {
		return t
	}
	return "no message"
}

// redactURLs renders a transport error with every URL's query removed:
// *url.Error puts the whole request URL, SAS signature included, into
// its message.
func redactURLs(err error) string {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err.Error()
	}
	target := ue.URL
	if u, perr := url.Parse(ue.URL); perr == nil {
		u.RawQuery, u.User = "", nil
		target = u.String()
	} else {
		target, _, _ = strings.Cut(target, "?")
	}
	return fmt.Sprintf("%s %s: %v", ue.Op, target, ue.Err)
}
