// Package agecrypt encrypts a replica client-side with age
// (filippo.io/age): it wraps any litestream.ReplicaClient so every object
// written is encrypted, and every object read is decrypted, transparently
// to restore, compaction and follow mode.
//
// Framing of an encrypted object (see docs/ENCRYPTION.md):
//
//	[100-byte LTX header, in clear] [age file of the LTX file's remaining bytes]
//
// The header stays readable because every backend, and the replica's
// listings, derive a file's creation time from it; it holds only what the
// file name and size already reveal (TXIDs, timestamp, page size, database
// size in pages). Its integrity is still protected: the LTX file checksum
// in the encrypted trailer covers it. age encrypts in 64 KiB chunks with a
// counter nonce, so a read from any offset decrypts only the chunks it
// needs, from one ranged read (stream.go).
package agecrypt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"filippo.io/age"
	"github.com/superfly/ltx"

	"github.com/sqlitebackup/litestream"
)

// ageMagic starts every age file.
const ageMagic = "age-encryption.org/v1\n"

// ErrNotEncrypted means a replica configured for encryption holds a file
// that is not encrypted: encrypted and clear files are never mixed
// silently.
var ErrNotEncrypted = errors.New("file is not age-encrypted, but the replica is configured for encryption")

// Client encrypts and decrypts around an inner client.
type Client struct {
	inner      litestream.ReplicaClient
	recipients []age.Recipient
	identities []age.Identity

	next      chan *encryptor // one encryptor made ahead (prepare.go)
	preparing atomic.Bool
	keys      keyCache // payload keys of files read lately
}

var _ litestream.ReplicaClient = (*Client)(nil)

// NewClient wraps inner. Writing needs recipients, reading needs
// identities; with rotated keys, list the new recipients and every
// identity that old files may need.
func NewClient(inner litestream.ReplicaClient, recipients []age.Recipient, identities []age.Identity) *Client {
	return &Client{inner: inner, recipients: recipients, identities: identities, next: make(chan *encryptor, 1)}
}

// Type returns the inner backend's type.
func (c *Client) Type() string { return c.inner.Type() }

// Unwrap returns the inner client.
func (c *Client) Unwrap() litestream.ReplicaClient { return c.inner }

func fileName(level int, minTXID, maxTXID ltx.TXID) string {
	return fmt.Sprintf("level %d file %s", level, ltx.FormatFilename(minTXID, maxTXID))
}

// LTXFiles lists the inner replica. Sizes are the encrypted sizes.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID, useMetadata bool) (ltx.FileIterator, error) {
	return c.inner.LTXFiles(ctx, level, seek, useMetadata)
}

// WriteLTXFile encrypts r (an LTX file) and stores it.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	if len(c.recipients) == 0 {
		return nil, fmt.Errorf("encrypt %s: no age recipients configured", fileName(level, minTXID, maxTXID))
	}
	hdr := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("encrypt %s: read header: %w", fileName(level, minTXID, maxTXID), err)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(c.encrypt(pw, hdr, r))
	}()
	info, err := c.inner.WriteLTXFile(ctx, level, minTXID, maxTXID, pr)
	pr.CloseWithError(err)
	return info, err
}

// encrypt writes the clear header and the age file of body to w. age
// writes 64 KiB + 16 bytes per chunk; buffering hands the inner client
// (which reads through a pipe) large, even pieces instead.
func (c *Client) encrypt(w io.Writer, hdr []byte, body io.Reader) error {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() { bw.Reset(nil); writerPool.Put(bw) }()
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	e, err := c.takeEncryptor()
	if err != nil {
		return err
	}
	ew, err := e.start(bw)
	if err != nil {
		return err
	}
	if _, err := io.Copy(ew, body); err != nil {
		return err
	}
	if err := ew.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// encryptBuffer is the size of the pieces handed to the inner client.
const encryptBuffer = 256 << 10

// writerPool keeps the buffers of finished uploads for the next ones:
// most level-0 files are far smaller than a buffer.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, encryptBuffer) }}

// OpenLTXFile returns the decrypted file from offset; size 0 reads to the
// end. A read within the clear LTX header is passed through; any other
// read decrypts only the chunks from offset on (stream.go).
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	name := fileName(level, minTXID, maxTXID)
	if size > 0 && offset+size <= ltx.HeaderSize {
		return c.inner.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	}
	if len(c.identities) == 0 {
		return nil, fmt.Errorf("decrypt %s: no age identities configured", name)
	}
	open := c.openStream
	if offset >= ltx.HeaderSize {
		open = c.openAt
	}
	r, closer, err := open(ctx, level, minTXID, maxTXID, offset)
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, decryptError(name, err)
	}
	if size > 0 {
		r = io.LimitReader(r, size)
	}
	return struct {
		io.Reader
		io.Closer
	}{decryptErrors{r, name}, closer}, nil
}

// openStream decrypts the whole object from its start and skips to
// offset, which lies within the clear header.
func (c *Client) openStream(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset int64) (io.Reader, io.Closer, error) {
	rc, err := c.inner.OpenLTXFile(ctx, level, minTXID, maxTXID, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	hdr := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(rc, hdr); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, rc, fmt.Errorf("read header: %w", err)
	}
	var head []byte // what was read past hdr, growing as needed
	read := func(n int) ([]byte, error) {
		have := len(head)
		head = append(head, make([]byte, n-have)...)
		m, err := io.ReadFull(rc, head[have:])
		head = head[:have+m]
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = nil // a short file: the header check tells
		}
		return head, err
	}
	aead, payloadOff, head, err := readPayloadKey(read, &c.keys, c.identities)
	if err != nil {
		return nil, rc, err
	}
	payload := newPayloadReader(io.MultiReader(bytes.NewReader(head[payloadOff:]), rc), aead, 0)
	return io.MultiReader(bytes.NewReader(hdr[offset:]), payload), rc, nil
}

// openAt decrypts from a plaintext offset past the header: one ranged
// read for the age header (rarely two), one from the chunk holding
// offset on.
func (c *Client) openAt(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset int64) (io.Reader, io.Closer, error) {
	aead, payloadOff, _, err := readPayloadKey(func(n int) ([]byte, error) {
		return c.readRange(ctx, level, minTXID, maxTXID, ltx.HeaderSize, int64(n))
	}, &c.keys, c.identities)
	if err != nil {
		return nil, nil, err
	}
	// Start in the chunk holding the byte before offset, so a read at the
	// very end still finds a chunk (and its end is authenticated).
	bodyOff := offset - ltx.HeaderSize
	first := max(bodyOff-1, 0) / chunkSize
	rc, err := c.inner.OpenLTXFile(ctx, level, minTXID, maxTXID, ltx.HeaderSize+payloadOff+first*encChunkSize, 0)
	if err != nil {
		return nil, nil, err
	}
	r := newPayloadReader(rc, aead, uint64(first))
	if _, err := io.CopyN(io.Discard, r, bodyOff-first*chunkSize); err != nil && err != io.EOF {
		return nil, rc, err
	}
	return r, rc, nil
}

// readRange reads up to size bytes of the stored object from offset.
func (c *Client) readRange(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) ([]byte, error) {
	rc, err := c.inner.OpenLTXFile(ctx, level, minTXID, maxTXID, offset, size)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, size))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// decryptError names the file, and says so plainly when no identity fits.
func decryptError(name string, err error) error {
	if errors.Is(err, ErrNotEncrypted) {
		return fmt.Errorf("%s: %w", name, err)
	}
	return identityError(name, err)
}

func identityError(name string, err error) error {
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return fmt.Errorf("decrypt %s: no configured age identity can decrypt it (wrong or missing identity): %w", name, err)
	}
	return fmt.Errorf("decrypt %s: %w", name, err)
}

// decryptErrors names the file in errors found while decrypting, such as
// a tampered or truncated chunk.
type decryptErrors struct {
	r    io.Reader
	name string
}

func (d decryptErrors) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("decrypt %s: %w", d.name, err)
	}
	return n, err
}

// DeleteLTXFiles deletes in the inner replica.
func (c *Client) DeleteLTXFiles(ctx context.Context, a []*ltx.FileInfo) error {
	return c.inner.DeleteLTXFiles(ctx, a)
}

// DeleteAll deletes the inner replica.
func (c *Client) DeleteAll(ctx context.Context) error { return c.inner.DeleteAll(ctx) }
