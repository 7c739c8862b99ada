package main

import (
	"flag"

	"github.com/sluice-dev/sluice/objstore/s3"
)

// s3Flags are the S3 settings a command takes on its command line; they
// override the standard AWS_* environment variables.
type s3Flags struct {
	endpoint  string
	region    string
	pathStyle bool
	insecure  bool
	checksum  string
}

func registerS3Flags(fs *flag.FlagSet) *s3Flags {
	f := &s3Flags{}
	fs.StringVar(&f.endpoint, "s3-endpoint", "", "S3 endpoint URL or host:port (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS S3)")
	fs.StringVar(&f.region, "s3-region", "", "S3 region (default: AWS_REGION, or "+s3.DefaultRegion+")")
	fs.BoolVar(&f.pathStyle, "s3-path-style", false, "use path-style bucket addressing (default: virtual-host for AWS, path for others)")
	fs.BoolVar(&f.insecure, "s3-insecure", false, "use plain http for an endpoint given without a scheme")
	fs.StringVar(&f.checksum, "s3-checksum", "", "per-part checksum the server verifies: crc32c (default) or md5 (for servers without x-amz-checksum support)")
	return f
}

// config returns the S3 configuration for bucket: the standard AWS_*
// environment variables (s3.ConfigFromEnv), overridden by the flags.
func (f *s3Flags) config(bucket string) s3.Config {
	c := s3.ConfigFromEnv()
	if f.endpoint != "" {
		c.Endpoint = f.endpoint
	}
	if f.region != "" {
		c.Region = f.region
	}
	if f.pathStyle {
		c.Style = s3.StylePath
	}
	if f.insecure {
		c.DisableTLS = true
	}
	if f.checksum != "" {
		c.Checksum = s3.ChecksumAlgorithm(f.checksum)
	}
	c.Bucket = bucket
	return c
}
