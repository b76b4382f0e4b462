package main

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/sqlitebackup/litestream"
	"github.com/sqlitebackup/litestream/server"
)

// daemonOps is what runs beside replication in `replicate`: the metrics
// listener (addr), the control socket (socket) and the heartbeat
// (heartbeat-url). A failure to start one is logged and replication goes
// on, as upstream: backups matter more than their monitoring.
type daemonOps struct {
	metrics   *server.MetricsServer
	control   *server.Control
	heartbeat *server.Heartbeat
	once      sync.Once
}

// testHeartbeatInterval, when set by a test, replaces heartbeat-interval
// (whose config minimum is a minute).
var testHeartbeatInterval time.Duration

// opsCloseTimeout bounds waiting for control requests and scrapes in
// flight at shutdown; the final syncs have their own timeout.
const opsCloseTimeout = 2 * time.Second

func (c *ReplicateCommand) startOps() *daemonOps {
	ops := &daemonOps{}
	if c.cfg.Addr != "" {
		m, err := server.ServeMetrics(c.cfg.Addr, c.cfg.PProf, c.logger)
		if err != nil {
			c.logger.Error("cannot serve metrics", "error", err)
		}
		ops.metrics = m
	}
	if c.cfg.Socket.Enabled {
		ctl := &server.Control{Store: c.store, Version: versionString(), NewDB: c.registerDB, PProf: c.cfg.PProf, Logger: c.logger}
		path, perm := c.cfg.Socket.Path, os.FileMode(c.cfg.Socket.Permissions)&os.ModePerm
		if path == "" {
			path = server.DefaultSocketPath
		}
		if perm == 0 {
			perm = server.DefaultSocketPermissions
		}
		if err := ctl.Listen(path, perm); err != nil {
			c.logger.Error("cannot open control socket", "error", err)
		} else {
			ops.control = ctl
		}
	}
	if c.cfg.HeartbeatURL != "" {
		ops.heartbeat = &server.Heartbeat{URL: c.cfg.HeartbeatURL, DBs: c.store.DBs, Logger: c.logger}
		if ops.control != nil {
			ops.heartbeat.DBs = ops.control.ActiveDBs // databases stopped on purpose do not block it
		}
		if d := c.cfg.HeartbeatInterval; d != nil {
			ops.heartbeat.Interval = d.D()
		}
		if testHeartbeatInterval > 0 {
			ops.heartbeat.Interval = testHeartbeatInterval
		}
		ops.heartbeat.Start()
	}
	return ops
}

// stop ends the heartbeat, the control socket and the metrics listener;
// safe to call twice.
func (o *daemonOps) stop() {
	o.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opsCloseTimeout)
		defer cancel()
		if o.heartbeat != nil {
			o.heartbeat.Stop()
		}
		if o.control != nil {
			_ = o.control.Close(ctx)
		}
		if o.metrics != nil {
			_ = o.metrics.Close(ctx)
		}
	})
}

// registerDB builds a database for the control socket's register: the
// same settings a config entry with only path and replica url would get.
func (c *ReplicateCommand) registerDB(path, replicaURL string) (*litestream.DB, error) {
	dbc, err := c.cfg.DBConfigFor(path, replicaURL)
	if err != nil {
		return nil, err
	}
	db, err := newDB(dbc, c.cfg, c.logger)
	if err == nil {
		c.leases.watch(db)
	}
	return db, err
}
