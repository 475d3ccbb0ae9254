package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultMaxDownload bounds a capture fetched by URL, so a wrong link cannot fill the pod's disk.
const DefaultMaxDownload int64 = 4 << 30

// ParseSHA256 checks a hex SHA-256 digest and returns it in lower case.
func ParseSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if b, err := hex.DecodeString(s); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("--sha256 %q: want 64 hex digits", s)
	}
	return s, nil
}

// Fetch downloads rawURL into a new file in dir (os.TempDir() when empty),
// hashing as it writes, and returns the file's path only when its SHA-256 is
// want: no packet of an unverified file is ever read. The caller removes the file.
func Fetch(ctx context.Context, rawURL, want string, maxBytes int64, dir string) (string, error) {
	want, err := ParseSHA256(want)
	if err != nil {
		return "", err
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %s: want an http:// or https:// URL", redact(rawURL))
	}
	name := redact(rawURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", name, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		// url.Error repeats the full URL, query and all: report the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("GET %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", name, resp.Status)
	}
	if resp.ContentLength > maxBytes {
		return "", fmt.Errorf("GET %s: %d bytes is more than the %d allowed", name, resp.ContentLength, maxBytes)
	}
	f, err := os.CreateTemp(dir, "capfleet-replay-*.cap")
	if err != nil {
		return "", fmt.Errorf("download of %s: %w", name, err)
	}
	keep := false
	defer func() {
		if !keep {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return "", fmt.Errorf("GET %s: after %d bytes: %w", name, n, err)
	}
	if n > maxBytes {
		return "", fmt.Errorf("GET %s: more than the %d bytes allowed", name, maxBytes)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return "", fmt.Errorf("GET %s: SHA-256 mismatch: the %d bytes received hash to %s, --sha256 says %s", name, n, got, want)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("download of %s: %w", name, err)
	}
	keep = true
	return f.Name(), nil
}

// VerifyFile checks a local file against a SHA-256, for --file with --sha256.
func VerifyFile(path, want string) error {
	want, err := ParseSHA256(want)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("capture file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("capture file %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("capture file %s: SHA-256 mismatch: the file hashes to %s, --sha256 says %s", path, got, want)
	}
	return nil
}

// httpClient bounds the connection set-up, never the body: a large capture
// over a slow link may take long, and the context ends it when asked.
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}}

// redact drops user info and query from a URL before it is printed:
// presigned object-store links carry their credentials there.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment = ""
	return u.String()
}
