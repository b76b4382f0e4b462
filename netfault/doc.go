// Package netfault is the network-fault suite of the reliability tests
// (issue 6, suite 3). It has no code of its own: its tests put a real
// Toxiproxy process between the engine and real storage servers (MinIO
// for S3, and SFTP and WebDAV) and inject latency, bandwidth limits,
// connections reset mid-upload and mid-download, timeouts and sliced
// packets, then check that replication catches up without a gap once the
// fault clears and that restore survives the fault, resuming a dropped
// download at the byte it had reached.
//
// It also holds a replicate -> compact -> snapshot -> restore round trip
// through the Store against every backend whose test server is
// configured.
//
// Run it with the servers of scripts/testinfra started and their
// variables exported (scripts/test does both):
//
//	TEST_SERVERS="minio sftp webdav toxiproxy" scripts/test ./netfault/
//
// Tests whose servers are not configured skip with a message naming the
// missing variables.
package netfault
