package sftp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// connection is one SSH connection with its SFTP session.
type connection struct {
	ssh  *ssh.Client
	sftp *sftp.Client

	closeOnce sync.Once
	done      chan struct{} // closed by close
}

// dial connects, verifies the host key, logs in and starts SFTP. ctx and
// cfg.DialTimeout bound the whole handshake. onLost is called once the
// session ends for any reason other than close.
func dial(ctx context.Context, cfg *Config, addr string, auth []ssh.AuthMethod, onLost func(*connection)) (*connection, error) {
	hk, err := newHostKeyCheck(cfg, addr)
	if err != nil {
		return nil, err
	}
	sshCfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   hk.callback,
		HostKeyAlgorithms: hk.algorithms,
		Timeout:           cfg.DialTimeout,
	}

	d := net.Dialer{Timeout: cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The ssh and sftp handshakes take no context: a deadline on the
	// socket bounds them, and cancelling ctx expires it at once.
	_ = nc.SetDeadline(time.Now().Add(cfg.DialTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	conn, err := handshake(nc, addr, sshCfg, cfg)
	stop()
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})

	go func() {
		_ = conn.sftp.Wait() // returns when the session ends, for any reason
		select {
		case <-conn.done:
		default:
			onLost(conn)
		}
	}()
	go conn.keepAlive(cfg.KeepAliveInterval)
	return conn, nil
}

func handshake(nc net.Conn, addr string, sshCfg *ssh.ClientConfig, cfg *Config) (*connection, error) {
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, sshCfg)
	if err != nil && strings.Contains(err.Error(), "unable to authenticate") {
		return nil, fmt.Errorf("ssh login as %s refused (check user, key-path and password): %w", cfg.User, err)
	} else if err != nil {
		return nil, fmt.Errorf("ssh handshake: %w", err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	fc, err := sftp.NewClient(client, sftp.UseConcurrentWrites(cfg.ConcurrentWrites))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("start sftp subsystem: %w", err)
	}
	return &connection{ssh: client, sftp: fc, done: make(chan struct{})}, nil
}

// keepAlive pings the server so that a connection that silently died (a
// dropped NAT entry, a crashed peer) is closed and redialled instead of
// hanging the next request forever.
func (c *connection) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			// OpenSSH answers unknown global requests with a failure
			// reply, which is all we need: proof that the peer is alive.
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		select {
		case err := <-replied:
			if err != nil {
				c.ssh.Close() // ends the sftp session, which triggers onLost
				return
			}
		case <-time.After(interval):
			c.ssh.Close()
			return
		case <-c.done:
			return
		}
	}
}

// abortGrace is how long a call whose ctx has ended may take to return by
// itself (ctx-aware requests, a finishing upload) before its connection
// is closed under it.
const abortGrace = 250 * time.Millisecond

// closeWhenDone closes the connection if ctx ends and stop has not been
// called within abortGrace after. pkg/sftp's requests take no context: on
// a connection that hangs they would wait for the keepalive to give up
// (a minute by default). Closing fails every request in flight at once,
// also other calls sharing the connection; the next call redials. stop
// may be called more than once.
func (c *connection) closeWhenDone(ctx context.Context) (stop func()) {
	finished := make(chan struct{})
	unregister := context.AfterFunc(ctx, func() {
		t := time.NewTimer(abortGrace)
		defer t.Stop()
		select {
		case <-finished:
		case <-t.C:
			// Closing the SSH connection first never blocks on the
			// hung peer; the session ends and onLost drops it.
			_ = c.ssh.Close()
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(finished)
			unregister()
		})
	}
}

// close ends the session and the SSH connection.
func (c *connection) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.sftp.Close()
		_ = c.ssh.Close()
	})
}
