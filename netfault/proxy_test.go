package netfault_test

import (
	"fmt"
	"os"
	"regexp"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

// toxic is one Toxiproxy toxic (https://github.com/Shopify/toxiproxy#toxics).
type toxic struct {
	typ    string // latency, bandwidth, limit_data, reset_peer, timeout, slicer
	stream string // "upstream" (towards the server) or "downstream"
	attrs  toxiproxy.Attributes
}

func (x toxic) String() string { return fmt.Sprintf("%s/%s%v", x.typ, x.stream, x.attrs) }

// faultProxy is a Toxiproxy proxy of the test's own in front of one
// server, so no other test (or package running in parallel) ever sees its
// toxics. It is deleted when the test ends.
type faultProxy struct {
	proxy *toxiproxy.Proxy
	addr  string // where clients connect: 127.0.0.1:port
	n     int    // toxics added, for unique names
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// requireToxiproxy skips the test when TOXIPROXY_URL is unset and
// returns it.
func requireToxiproxy(t *testing.T) string {
	t.Helper()
	api := os.Getenv("TOXIPROXY_URL")
	if api == "" {
		t.Skip("TOXIPROXY_URL not set: start toxiproxy with scripts/testinfra/start-servers.sh (or run scripts/test) to run the network-fault suite")
	}
	return api
}

// newFaultProxy creates a proxy to upstream (host:port), or skips the
// test when TOXIPROXY_URL is unset.
func newFaultProxy(t *testing.T, upstream string) *faultProxy {
	t.Helper()
	api := requireToxiproxy(t)
	if upstream == "" {
		t.Fatal("no upstream address for the proxy")
	}
	name := "netfault-" + unsafeName.ReplaceAllString(t.Name(), "_") + "-" + randomHex(t, 4)
	p, err := toxiproxy.NewClient(api).CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		t.Fatalf("toxiproxy: create proxy to %s: %v", upstream, err)
	}
	t.Cleanup(func() {
		if err := p.Delete(); err != nil {
			t.Logf("toxiproxy: delete proxy %s: %v", name, err)
		}
	})
	return &faultProxy{proxy: p, addr: p.Listen}
}

// inject adds toxics to the proxy (existing connections get them too) and
// returns a function that removes them again; they are also removed when
// the test ends.
func (p *faultProxy) inject(t *testing.T, toxics ...toxic) (clear func()) {
	t.Helper()
	var names []string
	for _, x := range toxics {
		p.n++
		name := fmt.Sprintf("%s_%s_%d", x.typ, x.stream, p.n)
		if _, err := p.proxy.AddToxic(name, x.typ, x.stream, 1, x.attrs); err != nil {
			t.Fatalf("toxiproxy: add %v: %v", x, err)
		}
		names = append(names, name)
	}
	cleared := false
	clear = func() {
		if cleared {
			return
		}
		cleared = true
		for _, name := range names {
			if err := p.proxy.RemoveToxic(name); err != nil {
				t.Errorf("toxiproxy: remove toxic %s: %v", name, err)
			}
		}
	}
	t.Cleanup(clear)
	return clear
}
