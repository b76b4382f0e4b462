package litestream

// SetMaxMergeBytes lowers the size cap of merged level-0 uploads for a
// test and returns a function restoring it.
func SetMaxMergeBytes(n int64) (restore func()) {
	old := maxMergeBytes
	maxMergeBytes = n
	return func() { maxMergeBytes = old }
}
