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
// needs (age.DecryptReaderAt over ranged reads).
package agecrypt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

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
}

var _ litestream.ReplicaClient = (*Client)(nil)

// NewClient wraps inner. Writing needs recipients, reading needs
// identities; with rotated keys, list the new recipients and every
// identity that old files may need.
func NewClient(inner litestream.ReplicaClient, recipients []age.Recipient, identities []age.Identity) *Client {
	return &Client{inner: inner, recipients: recipients, identities: identities}
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

func (c *Client) encrypt(w io.Writer, hdr []byte, body io.Reader) error {
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	ew, err := age.Encrypt(w, c.recipients...)
	if err != nil {
		return fmt.Errorf("age encrypt: %w", err)
	}
	if _, err := io.Copy(ew, body); err != nil {
		return err
	}
	return ew.Close()
}

// OpenLTXFile returns the decrypted file from offset; size 0 reads to the
// end. Reads from the start stream through age; reads from an offset
// decrypt only the chunks from there on.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	name := fileName(level, minTXID, maxTXID)
	if len(c.identities) == 0 {
		return nil, fmt.Errorf("decrypt %s: no age identities configured", name)
	}
	var r io.Reader
	var closer io.Closer
	var err error
	if offset < ltx.HeaderSize {
		r, closer, err = c.openStream(ctx, level, minTXID, maxTXID, name)
		if err == nil {
			if _, err = io.CopyN(io.Discard, r, offset); err != nil {
				err = fmt.Errorf("decrypt %s: %w", name, err)
			}
		}
	} else {
		r, closer, err = c.openAt(ctx, level, minTXID, maxTXID, name, offset)
	}
	if err != nil {
		if closer != nil {
			closer.Close()
		}
		return nil, err
	}
	if size > 0 {
		r = io.LimitReader(r, size)
	}
	return struct {
		io.Reader
		io.Closer
	}{decryptErrors{r, name}, closer}, nil
}

// openStream decrypts the whole object from its start.
func (c *Client) openStream(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, name string) (io.Reader, io.Closer, error) {
	rc, err := c.inner.OpenLTXFile(ctx, level, minTXID, maxTXID, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	hdr := make([]byte, ltx.HeaderSize)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, rc, fmt.Errorf("decrypt %s: read header: %w", name, err)
	}
	if err := checkMagic(br, name); err != nil {
		return nil, rc, err
	}
	body, err := age.Decrypt(br, c.identities...)
	if err != nil {
		return nil, rc, identityError(name, err)
	}
	return io.MultiReader(bytes.NewReader(hdr), body), rc, nil
}

// openAt decrypts from a plaintext offset past the header, using ranged
// reads of the object.
func (c *Client) openAt(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, name string, offset int64) (io.Reader, io.Closer, error) {
	size, err := c.objectSize(ctx, level, minTXID, maxTXID)
	if err != nil {
		return nil, nil, fmt.Errorf("decrypt %s: %w", name, err)
	}
	src := &rangeReaderAt{ctx: ctx, c: c.inner, level: level, minTXID: minTXID, maxTXID: maxTXID, base: ltx.HeaderSize}
	plain, plainSize, err := age.DecryptReaderAt(src, size-ltx.HeaderSize, c.identities...)
	if err != nil {
		if errors.Is(err, errNotAge) || !src.sawMagic() {
			return nil, nil, fmt.Errorf("%s: %w", name, ErrNotEncrypted)
		}
		return nil, nil, identityError(name, err)
	}
	start := offset - ltx.HeaderSize
	return io.NewSectionReader(plain, start, max(plainSize-start, 0)), io.NopCloser(nil), nil
}

func (c *Client) objectSize(ctx context.Context, level int, minTXID, maxTXID ltx.TXID) (int64, error) {
	infos, err := litestream.LTXFileInfos(ctx, c.inner, level, minTXID, false)
	if err != nil {
		return 0, err
	}
	for _, info := range infos {
		if info.MinTXID == minTXID && info.MaxTXID == maxTXID {
			return info.Size, nil
		}
	}
	return 0, fmt.Errorf("%w: not in the listing", errNotExist)
}

func checkMagic(br *bufio.Reader, name string) error {
	b, err := br.Peek(len(ageMagic))
	if err != nil || string(b) != ageMagic {
		return fmt.Errorf("%s: %w", name, ErrNotEncrypted)
	}
	return nil
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
