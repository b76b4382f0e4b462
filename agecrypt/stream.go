package agecrypt

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Decryption of an age file's payload, done here rather than through
// age.Decrypt / age.DecryptReaderAt for speed: age's reader allocates a
// new 64 KiB buffer per chunk and copies it, and its ReaderAt needs the
// object's size (a listing) and reads the last chunk first (another
// request). The age library still does everything that involves keys:
// age.ExtractHeader and age.DecryptHeader parse the header, unwrap the
// file key with the identities and check the header MAC. What remains is
// the payload format of the age v1 specification:
//
//	payload    = 16-byte nonce, then chunks
//	stream key = HKDF-SHA-256(ikm: file key, salt: nonce, info: "payload")
//	chunk i    = ChaCha20-Poly1305(stream key, nonce: 11-byte big-endian i
//	             followed by 0x01 for the last chunk and 0x00 otherwise)
//	             of 64 KiB of plaintext (less for the last chunk only)
//
// Tests check the result against age.Decrypt byte for byte.

const (
	chunkSize       = 64 << 10
	encChunkSize    = chunkSize + chacha20poly1305.Overhead
	streamNonceSize = 16
	// batchChunks chunks are read and decrypted at once, in place. Every
	// file open for reading holds one batch, and a restore or compaction
	// may open dozens of files.
	batchChunks = 2
	// maxHeadSize bounds the age header (the recipients' stanzas) we read
	// before the payload; one X25519 stanza is about 100 bytes.
	maxHeadSize = 64 << 10
)

var errTruncated = errors.New("encrypted file is truncated: its last chunk is missing")

// headSizes are the sizes of the object's beginning read to find the age
// header: a first small read fits any usual set of recipients (one X25519
// stanza takes about 100 bytes, a post-quantum one about 1.6 KiB), a
// second one allows for up to maxHeadSize.
var headSizes = []int{8 << 10, maxHeadSize + streamNonceSize}

// readPayloadKey reads the age header through read, which returns the
// object's first n bytes after the clear LTX header (fewer at its end),
// and returns the stream's AEAD, the payload's offset and the bytes read.
func readPayloadKey(read func(n int) ([]byte, error), keys *keyCache, identities []age.Identity) (cipher.AEAD, int64, []byte, error) {
	for i, n := range headSizes {
		head, err := read(n)
		if err != nil {
			return nil, 0, nil, err
		}
		aead, off, err := payloadKey(head, keys, identities)
		if errors.Is(err, errHeadShort) && len(head) == n && i+1 < len(headSizes) {
			continue // the header goes on past what we read
		}
		return aead, off, head, err
	}
	panic("unreachable")
}

var errHeadShort = errors.New("read age header: malformed, truncated or longer than 64 KiB")

// payloadKey parses the age header at the start of head (the object's
// bytes after the clear LTX header), unwraps the file key and returns the
// stream's AEAD and the payload's first chunk offset within head.
func payloadKey(head []byte, keys *keyCache, identities []age.Identity) (cipher.AEAD, int64, error) {
	if !bytes.HasPrefix(head, []byte(ageMagic)) {
		return nil, 0, ErrNotEncrypted
	}
	hdr, err := age.ExtractHeader(bytes.NewReader(head))
	// The header is parsed strictly, so its serialisation is its bytes.
	if err != nil || !bytes.HasPrefix(head, hdr) || len(head) < len(hdr)+streamNonceSize {
		return nil, 0, errHeadShort
	}
	off := len(hdr) + streamNonceSize
	if aead := keys.get(head[:off]); aead != nil {
		return aead, int64(off), nil
	}
	fileKey, err := age.DecryptHeader(hdr, identities...)
	if err != nil {
		return nil, 0, err
	}
	key, err := hkdf.Key(sha256.New, fileKey, head[len(hdr):off], "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, 0, err
	}
	aead, err := chacha20poly1305.New(key)
	if err != nil {
		return nil, 0, err
	}
	keys.put(head[:off], aead)
	return aead, int64(off), nil
}

// keyCache remembers the payload keys of the last files opened, by their
// age header and stream nonce: a restore reopens each file at its end (to
// confirm the end, as listings give encrypted sizes), and the X25519
// unwrap costs about 0.1 ms. The same header bytes always hold the same
// file key, so an entry can never be stale.
type keyCache struct {
	mu    sync.Mutex
	keys  map[string]cipher.AEAD
	order []string // oldest first
}

const keyCacheSize = 64

func (k *keyCache) get(head []byte) cipher.AEAD {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[string(head)]
}

func (k *keyCache) put(head []byte, aead cipher.AEAD) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]cipher.AEAD{}
	}
	if len(k.order) >= keyCacheSize {
		delete(k.keys, k.order[0])
		k.order = k.order[1:]
	}
	k.keys[string(head)] = aead
	k.order = append(k.order, string(head))
}

// payloadReader decrypts the chunks read from src, which starts at chunk
// number next.
//
// Whether a full-length chunk is the last one depends on whether any byte
// follows it, so each read asks for one byte more than a batch of chunks
// and carries that byte over to the next batch: every chunk is decrypted
// exactly once, with the right nonce.
type payloadReader struct {
	src  io.Reader
	aead cipher.AEAD
	next uint64 // number of the next chunk to read

	buf    []byte   // a batch of ciphertext plus one byte, decrypted in place
	carry  bool     // buf's last byte starts the next batch
	chunks [][]byte // decrypted chunks of the batch (slices of buf)
	cur    int      // the chunk being read
	last   bool     // the last chunk was decrypted
	err    error
	nonce  [chacha20poly1305.NonceSize]byte // here, not on the stack: Open would move it to the heap
}

func newPayloadReader(src io.Reader, aead cipher.AEAD, first uint64) *payloadReader {
	return &payloadReader{src: src, aead: aead, next: first, buf: make([]byte, batchChunks*encChunkSize+1)}
}

func (r *payloadReader) Read(p []byte) (int, error) {
	for r.cur >= len(r.chunks) || len(r.chunks[r.cur]) == 0 {
		if r.cur < len(r.chunks) {
			r.cur++
			continue
		}
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.fill()
	}
	n := copy(p, r.chunks[r.cur])
	r.chunks[r.cur] = r.chunks[r.cur][n:]
	return n, nil
}

// fill reads and decrypts the next batch of chunks. After the last chunk
// it checks that nothing follows and returns io.EOF.
func (r *payloadReader) fill() error {
	if r.last {
		if r.carry {
			return errors.New("trailing data after the last chunk of the encrypted file")
		}
		var b [1]byte
		if n, err := io.ReadFull(r.src, b[:]); n > 0 {
			return errors.New("trailing data after the last chunk of the encrypted file")
		} else if err != io.EOF {
			return fmt.Errorf("read after the last chunk: %w", err)
		}
		return io.EOF
	}
	start := 0
	if r.carry {
		r.buf[0], start = r.buf[len(r.buf)-1], 1
	}
	n, err := io.ReadFull(r.src, r.buf[start:])
	n += start
	switch {
	case err == nil: // the byte past the batch starts the next one
		r.carry = true
		n--
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		r.carry = false // the stream ends in this batch
		if n == 0 {
			return errTruncated
		}
	default:
		return err
	}
	r.chunks, r.cur = r.chunks[:0], 0
	for data := r.buf[:n]; len(data) > 0; {
		piece := data[:min(len(data), encChunkSize)]
		data = data[len(piece):]
		plain, err := r.open(piece, !r.carry && len(data) == 0)
		if err != nil {
			return err
		}
		r.chunks = append(r.chunks, plain)
	}
	return nil
}

// open decrypts one chunk in place; final says the stream ends after it,
// so it must be the last chunk, and no other may be.
func (r *payloadReader) open(piece []byte, final bool) ([]byte, error) {
	switch {
	case len(piece) < chacha20poly1305.Overhead:
		return nil, errTruncated
	case len(piece) == chacha20poly1305.Overhead && r.next > 0:
		return nil, errors.New("encrypted file ends with an empty chunk")
	}
	nonce := r.nonce[:]
	binary.BigEndian.PutUint64(nonce[3:11], r.next)
	nonce[11] = 0
	if final {
		nonce[11] = 1
	}
	plain, err := r.aead.Open(piece[:0], nonce, piece, nil)
	if err != nil {
		if final {
			return nil, fmt.Errorf("chunk %d fails authentication: the file is truncated, corrupted or tampered with", r.next)
		}
		return nil, fmt.Errorf("chunk %d fails authentication: the file is corrupted or tampered with", r.next)
	}
	r.last = final
	r.next++
	return plain, nil
}
