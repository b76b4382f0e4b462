package agecrypt

import (
	"bytes"
	"fmt"
	"io"

	"filippo.io/age"
)

// Setting up an age encryption costs about 0.2 ms of CPU (a fresh file
// key wrapped to every recipient with X25519), as much as encrypting
// half a megabyte. Most uploads are small level-0 files, one per sync, so
// the next upload's encryptor is made while the current upload runs —
// typically while the storage writes or fsyncs — and waits in Client.next.
// Each encryptor, and so each file key, is used for exactly one file.

// encryptor is an age encryption set up ahead of its file: the age
// header and stream nonce are already in head, and the payload goes
// wherever out points.
type encryptor struct {
	head []byte
	out  *redirect
	ew   io.WriteCloser
}

// redirect is an io.Writer whose destination is chosen later.
type redirect struct{ w io.Writer }

func (r *redirect) Write(p []byte) (int, error) { return r.w.Write(p) }

func (c *Client) newEncryptor() (*encryptor, error) {
	var head bytes.Buffer
	e := &encryptor{out: &redirect{w: &head}}
	ew, err := age.Encrypt(e.out, c.recipients...)
	if err != nil {
		return nil, fmt.Errorf("age encrypt: %w", err)
	}
	e.head, e.ew = head.Bytes(), ew
	return e, nil
}

// takeEncryptor returns the prepared encryptor, or makes one, and starts
// preparing the next.
func (c *Client) takeEncryptor() (*encryptor, error) {
	defer c.prepareNext()
	select {
	case e := <-c.next:
		return e, nil
	default:
		return c.newEncryptor()
	}
}

// prepareNext fills Client.next in the background, unless it is full or
// being filled.
func (c *Client) prepareNext() {
	if len(c.next) > 0 || !c.preparing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.preparing.Store(false)
		e, err := c.newEncryptor()
		if err != nil {
			return // the upload that needs one reports the error
		}
		select {
		case c.next <- e:
		default:
		}
	}()
}

// start sends the age header to w and the payload after it.
func (e *encryptor) start(w io.Writer) (io.WriteCloser, error) {
	if _, err := w.Write(e.head); err != nil {
		return nil, err
	}
	e.out.w = w
	return e.ew, nil
}
