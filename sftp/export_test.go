package sftp

// BreakConnection closes the SSH connection under the client, as a network
// failure would, without telling the client. Tests use it to check that
// the next call redials.
func (c *ReplicaClient) BreakConnection() bool {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return false
	}
	_ = conn.ssh.Close()
	return true
}
