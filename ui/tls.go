package ui

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// certFiles serves the key pair in two files and reloads it when either changes: a Secret mounted as a
// volume is updated in place when cert-manager (or anyone) renews it, and the UI must not need a
// restart to present the new certificate.
type certFiles struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time // the newer of the two files' modification times when cert was read
	checked time.Time
}

// certRecheck spaces the stats of the files: a handshake costs far more, but a page opens many.
const certRecheck = 2 * time.Second

// loadCertFiles reads the pair once, so that a missing or mismatched file is an error at start.
func loadCertFiles(certFile, keyFile string) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile}
	if _, err := c.get(nil); err != nil {
		return nil, err
	}
	return c, nil
}

// get is tls.Config.GetCertificate. A pair that fails to load while being replaced (one file written,
// not yet the other) keeps the previous one in service.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.cert != nil && now.Sub(c.checked) < certRecheck {
		return c.cert, nil
	}
	c.checked = now
	mod, err := newestModTime(c.certFile, c.keyFile)
	if err == nil && c.cert != nil && !mod.After(c.modTime) {
		return c.cert, nil
	}
	if err == nil {
		var pair tls.Certificate
		if pair, err = tls.LoadX509KeyPair(c.certFile, c.keyFile); err == nil {
			c.cert, c.modTime = &pair, mod
			return c.cert, nil
		}
	}
	if c.cert != nil {
		return c.cert, nil
	}
	return nil, fmt.Errorf("TLS key pair --tls-cert-file %s, --tls-key-file %s: %w", c.certFile, c.keyFile, err)
}

func newestModTime(files ...string) (time.Time, error) {
	var newest time.Time
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return time.Time{}, err
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
	}
	return newest, nil
}

// tlsConfig is the UI's server TLS: the pair from the files, TLS 1.2 at least.
func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--tls-cert-file and --tls-key-file go together")
	}
	if certFile == "" {
		return nil, nil
	}
	c, err := loadCertFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}, nil
}
