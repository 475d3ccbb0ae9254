package ui

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 with the given serial and its key, and returns the
// certificate for a client to trust.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "capfleet-ui"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != "" {
		write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	if keyFile != "" {
		write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	}
	c, err := x509.ParseCertificate(der)
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

// servedSerial is the serial number of the certificate a new connection to addr is shown, the
// client trusting only trusted.
func servedSerial(t *testing.T, addr string, trusted ...*x509.Certificate) int64 {
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
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
}

// With a key pair the UI speaks only HTTPS, and a renewed Secret is served without a restart; a pair
// caught half written keeps the old one in service.
func TestServesHTTPSAndReloadsARenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := selfSigned(t, certFile, keyFile, 1)
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

	if got := servedSerial(t, addr, first); got != 1 {
		t.Fatalf("serial %d served, want 1", got)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP answered %s, want 400 (HTTPS only)", resp.Status)
	}

	second := selfSigned(t, certFile, keyFile, 2)
	time.Sleep(certRecheck + 200*time.Millisecond)
	if got := servedSerial(t, addr, first, second); got != 2 {
		t.Fatalf("serial %d served after renewal, want 2", got)
	}

	selfSigned(t, certFile, "", 3) // the certificate renewed, its key not yet
	time.Sleep(certRecheck + 200*time.Millisecond)
	if got := servedSerial(t, addr, first, second); got != 2 {
		t.Fatalf("serial %d served with a mismatched pair on disk, want the previous 2", got)
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
