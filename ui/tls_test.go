package ui

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"capfleet.dev/capfleet/internal/testpki"
)

// selfSigned writes a new certificate for 127.0.0.1 and its key (each when its file is named), and
// returns the certificate for a client to trust.
func selfSigned(t *testing.T, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	pair := testpki.NewServer(t, "capfleet-ui", net.ParseIP("127.0.0.1"))
	if certFile != "" {
		write(t, certFile, []byte(pair.CertPEM))
	}
	if keyFile != "" {
		write(t, keyFile, []byte(pair.KeyPEM))
	}
	b, _ := pem.Decode([]byte(pair.CertPEM))
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// write replaces a file as a Secret volume update does, with a modification time the reload sees as new.
func write(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(name, later, later); err != nil {
		t.Fatal(err)
	}
}

// served is the certificate a new connection to addr is shown, the client trusting only trusted.
func served(t *testing.T, addr string, trusted ...*x509.Certificate) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range trusted {
		pool.AddCert(c)
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := cl.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("https: %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0]
}

// With a key pair the UI speaks only HTTPS, and a renewed Secret is served without a restart; a pair
// caught half written keeps the old one in service.
func TestServesHTTPSAndReloadsARenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := selfSigned(t, certFile, keyFile)
	tc, err := tlsConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	go func() { done <- serve(ctx, ln, h, tc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addr := ln.Addr().String()

	if got := served(t, addr, first); !got.Equal(first) {
		t.Fatalf("serial %v served, want %v", got.SerialNumber, first.SerialNumber)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP answered %s, want 400 (HTTPS only)", resp.Status)
	}

	second := selfSigned(t, certFile, keyFile)
	time.Sleep(certRecheck + 200*time.Millisecond)
	if got := served(t, addr, first, second); !got.Equal(second) {
		t.Fatalf("serial %v served after renewal, want the renewed %v", got.SerialNumber, second.SerialNumber)
	}

	selfSigned(t, certFile, "") // the certificate renewed, its key not yet
	time.Sleep(certRecheck + 200*time.Millisecond)
	if got := served(t, addr, first, second); !got.Equal(second) {
		t.Fatalf("serial %v served with a mismatched pair on disk, want the previous %v", got.SerialNumber, second.SerialNumber)
	}
}

func TestTLSFlagsAreCheckedAtStart(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ cert, key, want string }{
		{filepath.Join(dir, "tls.crt"), "", "go together"},
		{filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key"), "missing.crt"},
	} {
		if _, err := tlsConfig(c.cert, c.key); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("tlsConfig(%q, %q): %v, want an error saying %q", c.cert, c.key, err, c.want)
		}
	}
	if tc, err := tlsConfig("", ""); tc != nil || err != nil {
		t.Errorf("no files: %v, %v; want plain HTTP", tc, err)
	}
}
