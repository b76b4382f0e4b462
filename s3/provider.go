package s3

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// provider is an S3-compatible service recognised from its endpoint,
// used to pick defaults that work around its quirks.
type provider int

const (
	providerGeneric provider = iota // AWS itself, or anything unknown
	providerR2
	providerB2
	providerDigitalOcean
	providerScaleway
	providerHetzner
	providerFilebase
	providerTigris
	providerSupabase
	providerGCS
)

func (p provider) String() string {
	return [...]string{"generic", "cloudflare-r2", "backblaze-b2", "digitalocean", "scaleway",
		"hetzner", "filebase", "tigris", "supabase", "gcs"}[p]
}

// detectProvider looks at the endpoint's host name only.
func detectProvider(endpoint string) provider {
	if endpoint == "" {
		return providerGeneric
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return providerGeneric
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case strings.HasSuffix(host, ".r2.cloudflarestorage.com"):
		return providerR2
	case strings.HasSuffix(host, ".backblazeb2.com"):
		return providerB2
	case host == "digitaloceanspaces.com" || strings.HasSuffix(host, ".digitaloceanspaces.com"):
		return providerDigitalOcean
	case strings.HasSuffix(host, ".scw.cloud"):
		return providerScaleway
	case strings.HasSuffix(host, ".your-objectstorage.com"):
		return providerHetzner
	case host == "s3.filebase.com":
		return providerFilebase
	case host == "fly.storage.tigris.dev" || host == "t3.storage.dev" || strings.HasSuffix(host, ".t3.storage.dev"):
		return providerTigris
	case strings.HasSuffix(host, ".supabase.co"):
		return providerSupabase
	case isGCSHost(host):
		return providerGCS
	}
	return providerGeneric
}

// isGCSHost matches Google Cloud Storage's XML API hosts, e.g.
// storage.googleapis.com or storage.europe-west1.rep.googleapis.com.
func isGCSHost(host string) bool {
	if !strings.HasSuffix(host, ".googleapis.com") {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, ".googleapis.com"), ".") {
		if label == "storage" || strings.HasPrefix(label, "storage-") {
			return true
		}
	}
	return false
}

// HostInfo is what the host part of an s3:// URL says about a replica.
// Endpoint and ForcePathStyle are set only for hosts naming a provider.
type HostInfo struct {
	Bucket         string
	Region         string
	Endpoint       string
	ForcePathStyle *bool
}

var (
	awsHostRegex      = regexp.MustCompile(`^(.+)\.s3(?:[.-]([a-z0-9-]+))?\.amazonaws\.com$`)
	doHostRegex       = regexp.MustCompile(`^(.+)\.([a-z0-9-]+)\.digitaloceanspaces\.com$`)
	b2HostRegex       = regexp.MustCompile(`^(.+)\.s3\.([a-z0-9-]+)\.backblazeb2\.com$`)
	filebaseHostRegex = regexp.MustCompile(`^(.+)\.s3\.filebase\.com$`)
	scwHostRegex      = regexp.MustCompile(`^(.+)\.s3\.([a-z0-9-]+)\.scw\.cloud$`)
)

// ParseHost interprets the host of an s3:// URL: a plain bucket name,
// one of the provider host forms (bucket.s3[.region].amazonaws.com,
// bucket.REGION.digitaloceanspaces.com, bucket.s3.REGION.backblazeb2.com,
// bucket.s3.filebase.com, bucket.s3.REGION.scw.cloud), or the MinIO form
// bucket.host:port, which means a plain-http endpoint with path-style
// addressing.
func ParseHost(host string) (HostInfo, error) {
	h := strings.ToLower(host)
	pathStyle := func(v bool) *bool { return &v }
	if strings.Contains(h, ":") && !strings.Contains(h, ".com") {
		bucket, hostport, ok := strings.Cut(host, ".")
		if !ok || bucket == "" {
			return HostInfo{}, fmt.Errorf("s3 URL host %q: expected bucket.host:port", host)
		}
		return HostInfo{Bucket: bucket, Region: DefaultRegion, Endpoint: "http://" + hostport, ForcePathStyle: pathStyle(true)}, nil
	}
	if a := awsHostRegex.FindStringSubmatch(h); a != nil {
		return HostInfo{Bucket: a[1], Region: a[2]}, nil
	}
	if a := doHostRegex.FindStringSubmatch(h); a != nil {
		return HostInfo{Bucket: a[1], Region: a[2], Endpoint: "https://" + a[2] + ".digitaloceanspaces.com", ForcePathStyle: pathStyle(false)}, nil
	}
	if a := b2HostRegex.FindStringSubmatch(h); a != nil {
		return HostInfo{Bucket: a[1], Region: a[2], Endpoint: "https://s3." + a[2] + ".backblazeb2.com", ForcePathStyle: pathStyle(true)}, nil
	}
	if a := filebaseHostRegex.FindStringSubmatch(h); a != nil {
		return HostInfo{Bucket: a[1], Endpoint: "https://s3.filebase.com", ForcePathStyle: pathStyle(true)}, nil
	}
	if a := scwHostRegex.FindStringSubmatch(h); a != nil {
		return HostInfo{Bucket: a[1], Region: a[2], Endpoint: "https://s3." + a[2] + ".scw.cloud", ForcePathStyle: pathStyle(false)}, nil
	}
	if host == "" {
		return HostInfo{}, fmt.Errorf("s3 URL has no bucket")
	}
	return HostInfo{Bucket: host}, nil
}

// accessPointRegex matches arn:PARTITION:s3:REGION:ACCOUNT:accesspoint/NAME
// followed by an optional /prefix.
var accessPointRegex = regexp.MustCompile(`^(arn:aws[a-z-]*:s3:([a-z0-9-]+):(\d+):accesspoint[/:]([a-zA-Z0-9-]+))(?:/(.*))?$`)

// ParseAccessPointARN splits "arn:aws:s3:REGION:ACCT:accesspoint/NAME/prefix"
// into the ARN (used as the bucket), its region and the key prefix.
func ParseAccessPointARN(s string) (arn, region, prefix string, ok bool) {
	a := accessPointRegex.FindStringSubmatch(s)
	if a == nil {
		return "", "", "", false
	}
	return a[1], a[2], strings.Trim(a[5], "/"), true
}
