package gs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"sync"
)

// replayLimit is how much of an upload is kept in memory so that a
// failed request can be sent again. A file that fits (nearly every L0
// file) is retried like any other request and sent with its length; a
// larger one is streamed and retried only if the failed attempt had not
// read past this prefix (e.g. the connection was refused).
var replayLimit int64 = 4 << 20

// errBodySource marks a failure to read the data being uploaded, which
// no retry can mend.
var errBodySource = errors.New("reading the data to upload")

// objectMeta is the JSON metadata part of an upload, and the subset of
// an object resource the client reads back.
type objectMeta struct {
	Name        string            `json:"name"`
	ContentType string            `json:"contentType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`

	Size        int64  `json:"size,string,omitempty"`
	Generation  int64  `json:"generation,string,omitempty"`
	TimeCreated string `json:"timeCreated,omitempty"`
	Updated     string `json:"updated,omitempty"`
}

// uploadSource is the data of one upload: a prefix held in memory and,
// for large files, the rest of the reader. Once an attempt has read from
// rest, the data cannot be sent again.
type uploadSource struct {
	prefix []byte
	rest   io.Reader // nil when prefix is the whole file

	mu       sync.Mutex
	restUsed bool
	readErr  error // the reader's own failure, if any
}

// newUploadSource reads up to replayLimit bytes of r.
func newUploadSource(r io.Reader) (*uploadSource, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, replayLimit+1))
	if err != nil {
		return nil, err
	}
	s := &uploadSource{prefix: buf.Bytes()}
	if n > replayLimit {
		s.rest = r
	}
	return s, nil
}

// size returns the file's length when all of it is in memory.
func (s *uploadSource) size() (int64, bool) { return int64(len(s.prefix)), s.rest == nil }

func (s *uploadSource) replayable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.restUsed
}

// copyTo writes the whole file to w.
func (s *uploadSource) copyTo(w io.Writer) error {
	if _, err := w.Write(s.prefix); err != nil || s.rest == nil {
		return err
	}
	s.mu.Lock()
	s.restUsed = true
	s.mu.Unlock()
	_, err := io.Copy(w, sourceReader{s})
	return err
}

// sourceReader reads the rest of the file, telling the reader's own
// failures apart from the pipe's.
type sourceReader struct{ s *uploadSource }

func (r sourceReader) Read(p []byte) (int, error) {
	n, err := r.s.rest.Read(p)
	if err != nil && err != io.EOF {
		r.s.mu.Lock()
		r.s.readErr = err
		r.s.mu.Unlock()
		err = fmt.Errorf("%w: %w", errBodySource, err)
	}
	return n, err
}

func (s *uploadSource) sourceErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readErr
}

// multipartBody encodes a JSON API multipart upload (multipart/related:
// the object's JSON metadata, then its data) into a pipe, so that the
// file is streamed rather than held in memory. The closing boundary is
// written only after the whole file: a body cut short by an error or a
// cancellation is an invalid request, and GCS stores nothing.
type multipartBody struct {
	pr          *io.PipeReader
	contentType string
	length      int64 // -1 when unknown
	done        chan struct{}
}

func newMultipartBody(meta *objectMeta, src *uploadSource) (*multipartBody, error) {
	metaJSON, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	b := &multipartBody{pr: pr, contentType: "multipart/related; boundary=" + mw.Boundary(), length: -1, done: make(chan struct{})}
	if n, ok := src.size(); ok {
		b.length = multipartLength(mw.Boundary(), meta.ContentType, metaJSON, n)
	}
	go func() {
		defer close(b.done)
		pw.CloseWithError(writeMultipart(mw, meta.ContentType, metaJSON, src))
	}()
	return b, nil
}

// writeMultipart writes the two parts and, if the data was complete,
// the closing boundary.
func writeMultipart(mw *multipart.Writer, contentType string, metaJSON []byte, src *uploadSource) error {
	w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json; charset=UTF-8"}})
	if err != nil {
		return err
	}
	if _, err := w.Write(metaJSON); err != nil {
		return err
	}
	w, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {contentType}})
	if err != nil {
		return err
	}
	if err := src.copyTo(w); err != nil {
		return err
	}
	return mw.Close()
}

// multipartLength returns the encoded size of a body whose data part is
// n bytes long, by encoding it with empty data.
func multipartLength(boundary, contentType string, metaJSON []byte, n int64) int64 {
	var cw countingWriter
	mw := multipart.NewWriter(&cw)
	_ = mw.SetBoundary(boundary)
	_ = writeMultipart(mw, contentType, metaJSON, &uploadSource{})
	return cw.n + n
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// abort stops the encoder, if still running, and waits for it: the
// transport may close the body only after Do has returned.
func (b *multipartBody) abort() {
	b.pr.CloseWithError(errUploadAborted)
	<-b.done
}

var errUploadAborted = errors.New("upload aborted")

// upload stores an object in one multipart request. ifGenerationMatch,
// when not nil, is a precondition GCS checks atomically (0: the object
// must not exist). It returns the stored object's resource.
func (c *ReplicaClient) upload(ctx context.Context, key string, meta *objectMeta, src *uploadSource, ifGenerationMatch *int64) (*objectMeta, error) {
	ep, err := c.endpoint(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"uploadType": {"multipart"}, "name": {key}}
	if ifGenerationMatch != nil {
		q.Set("ifGenerationMatch", strconv.FormatInt(*ifGenerationMatch, 10))
	}
	u := ep.uploadURL(c.cfg.Bucket, q)
	meta.Name = key

	var body *multipartBody
	defer func() {
		if body != nil {
			body.abort()
		}
	}()
	resp, err := c.do(ctx, ep.hc, func(ctx context.Context) (*http.Request, error) {
		if body != nil {
			body.abort()
			if !src.replayable() {
				return nil, errNoReplay
			}
		}
		if body, err = newMultipartBody(meta, src); err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body.pr)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", body.contentType)
		req.ContentLength = body.length
		return req, nil
	})
	if err != nil {
		if serr := src.sourceErr(); serr != nil {
			return nil, fmt.Errorf("%w: %w", errBodySource, serr)
		}
		return nil, err
	}
	defer resp.Body.Close()
	var obj objectMeta
	if err := json.NewDecoder(resp.Body).Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode upload response: %w", err)
	}
	return &obj, nil
}
