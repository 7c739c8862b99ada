package s3

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/objstore"
)

// AddressingStyle says how the bucket is put into request URLs.
type AddressingStyle string

// Addressing styles. StyleAuto picks virtual-host style for AWS and path
// style for every other endpoint (MinIO, versitygw, R2 account endpoints
// all accept path style).
const (
	StyleAuto        AddressingStyle = "auto"
	StylePath        AddressingStyle = "path"         // https://host/bucket/key
	StyleVirtualHost AddressingStyle = "virtual-host" // https://bucket.host/key
)

// ChecksumAlgorithm names the per-part checksum the server verifies.
type ChecksumAlgorithm string

// Per-part checksums. CRC32C is hardware-accelerated and costs almost no
// CPU; AWS S3, R2, MinIO and versitygw verify it (x-amz-checksum-crc32c).
// MD5 (Content-MD5) is understood by every S3 API, old ones included, and
// costs about 1.5 CPU-seconds per GB.
const (
	ChecksumCRC32C ChecksumAlgorithm = "crc32c"
	ChecksumMD5    ChecksumAlgorithm = "md5"
)

// DefaultRegion is used when no region is configured and the endpoint is
// not AWS (on AWS the bucket's region is looked up). Cloudflare R2 accepts
// any region name ("auto" is its documented one).
const DefaultRegion = "us-east-1"

// Config configures a Store. Build it with NewConfig or ConfigFromEnv and
// override fields from flags or a config file; zero durations mean the
// defaults of NewConfig.
type Config struct {
	// Endpoint is the S3 API address: "host[:port]" or a URL
	// ("https://<account>.r2.cloudflarestorage.com", "http://127.0.0.1:9000").
	// A URL's scheme decides TLS; empty means AWS S3 (s3.amazonaws.com).
	Endpoint string
	// Region signs requests. Empty: the bucket's region is looked up on
	// AWS (one extra request), and DefaultRegion is used elsewhere.
	Region string
	Bucket string
	// Prefix is prepended, as a directory, to every key: with Prefix
	// "backups" the key "db/1.sql" is stored as "backups/db/1.sql".
	Prefix string
	Style  AddressingStyle
	// DisableTLS selects plain http for an Endpoint without a scheme.
	DisableTLS bool

	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// MaxRetries is how many attempts minio-go makes for one request
	// (1 disables its internal retries; the multipart Writer retries
	// parts on its own as well).
	MaxRetries int
	// DialTimeout bounds connecting (TCP and TLS handshake).
	DialTimeout time.Duration
	// RequestTimeout bounds each request without a large body (create,
	// list, head, delete, abort), retries included.
	RequestTimeout time.Duration
	// CompleteTimeout bounds CompleteMultipart and server-side copies,
	// which servers may take minutes to finish for large objects.
	CompleteTimeout time.Duration
	// IdleTimeout cancels a transfer (part upload, put, get) that moves
	// no bytes, or waits for a response, for this long.
	IdleTimeout time.Duration
	// DisableConditionalWrites stops sending "If-None-Match: *" on
	// CompleteMultipart and Put with NoOverwrite, for servers that reject
	// the header. A HEAD check still runs first, but then two writers
	// racing for the same key can both succeed (the last one wins).
	DisableConditionalWrites bool
	// Checksum is the per-part checksum the server verifies: ChecksumCRC32C
	// (the default) or ChecksumMD5 for servers that do not know the
	// x-amz-checksum headers. Part bodies are sent with an unsigned payload
	// either way: the signed checksum header protects them, so the body
	// is not hashed again with SHA-256 for the signature.
	Checksum ChecksumAlgorithm
}

// NewConfig returns a Config with every default set.
func NewConfig() Config {
	return Config{
		Style:           StyleAuto,
		MaxRetries:      3,
		DialTimeout:     10 * time.Second,
		RequestTimeout:  time.Minute,
		CompleteTimeout: 30 * time.Minute,
		IdleTimeout:     time.Minute,
		Checksum:        ChecksumCRC32C,
	}
}

// ConfigFromEnv returns NewConfig() completed from the standard AWS
// variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// AWS_REGION (or AWS_DEFAULT_REGION), and AWS_ENDPOINT_URL_S3 (or
// AWS_ENDPOINT_URL) for a custom endpoint. The bucket is not read from
// the environment: it comes from the s3://bucket/key URL or the config.
func ConfigFromEnv() Config {
	return configFromLookup(os.Getenv)
}

func configFromLookup(getenv func(string) string) Config {
	c := NewConfig()
	c.AccessKeyID = getenv("AWS_ACCESS_KEY_ID")
	c.SecretAccessKey = getenv("AWS_SECRET_ACCESS_KEY")
	c.SessionToken = getenv("AWS_SESSION_TOKEN")
	if r := firstNonEmpty(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION")); r != "" {
		c.Region = r
	}
	c.Endpoint = firstNonEmpty(getenv("AWS_ENDPOINT_URL_S3"), getenv("AWS_ENDPOINT_URL"))
	return c
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// withDefaults fills zero fields from NewConfig.
func (c Config) withDefaults() Config {
	d := NewConfig()
	if c.Style == "" {
		c.Style = d.Style
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = d.MaxRetries
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.CompleteTimeout <= 0 {
		c.CompleteTimeout = d.CompleteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.Checksum == "" {
		c.Checksum = d.Checksum
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	return c
}

// endpoint splits Endpoint into the host[:port] minio-go wants and
// whether to use TLS.
func (c Config) endpoint() (host string, secure bool, err error) {
	e := strings.TrimSpace(c.Endpoint)
	if e == "" {
		return "s3.amazonaws.com", !c.DisableTLS, nil
	}
	if !strings.Contains(e, "://") {
		if strings.ContainsAny(e, "/?#") {
			return "", false, fmt.Errorf("endpoint %q: want host[:port] or an http(s) URL without a path", e)
		}
		return e, !c.DisableTLS, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", false, fmt.Errorf("endpoint %q: %w", e, err)
	}
	switch u.Scheme {
	case "https":
		secure = true
	case "http":
		secure = false
	default:
		return "", false, fmt.Errorf("endpoint %q: scheme must be http or https", e)
	}
	if u.Host == "" {
		return "", false, fmt.Errorf("endpoint %q: no host", e)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", false, fmt.Errorf("endpoint %q: want scheme://host[:port] only; put the bucket in Bucket and key prefixes in Prefix", e)
	}
	return u.Host, secure, nil
}

func (c Config) validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("no bucket"))
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		errs = append(errs, errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the access key and secret in the config)"))
	}
	switch c.Style {
	case StyleAuto, StylePath, StyleVirtualHost:
	default:
		errs = append(errs, fmt.Errorf("addressing style %q: want %q, %q or %q", c.Style, StyleAuto, StylePath, StyleVirtualHost))
	}
	switch c.Checksum {
	case ChecksumCRC32C, ChecksumMD5:
	default:
		errs = append(errs, fmt.Errorf("checksum %q: want %q or %q", c.Checksum, ChecksumCRC32C, ChecksumMD5))
	}
	if _, _, err := c.endpoint(); err != nil {
		errs = append(errs, err)
	}
	if c.Prefix != "" {
		if err := objstore.ValidateKey(c.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("prefix: %w", err))
		}
	}
	return errors.Join(errs...)
}
