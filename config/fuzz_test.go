package config

import "testing"

// FuzzParse: arbitrary config text gives a config or an error, never a
// panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"dbs:\n  - path: /a.db\n    replica:\n      url: s3://bucket/a\n",
		"dbs:\n  - dir: /d\n    pattern: '*.db'\n    replica:\n      path: /r\n",
		"levels: [{interval: 1s}]\nsnapshot: {interval: 1h, retention: 2h}\nlogging: {level: debug}\n",
		"dbs:\n  - path: /a.db\n    monitor-interval: 1ms\n    replicas:\n      - type: file\n        path: /r\n",
		"part-size: 5MiB\ndbs: []\n",
		"dbs: [\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse([]byte(s), false)
		if err == nil && c == nil {
			t.Fatal("nil config without an error")
		}
	})
}
