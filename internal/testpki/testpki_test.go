package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestNewCA(t *testing.T) {
	a, b := NewCA(t, "one"), NewCA(t, "two")
	block, _ := pem.Decode([]byte(a.CertPEM))
	if block == nil {
		t.Fatalf("no PEM certificate in %q", a.CertPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || cert.Subject.CommonName != "one" || cert.CheckSignatureFrom(cert) != nil {
		t.Errorf("not a self-signed CA named one: %+v", cert.Subject)
	}
	if _, err := tls.X509KeyPair([]byte(a.CertPEM), []byte(a.KeyPEM)); err != nil {
		t.Errorf("certificate and key do not pair: %v", err)
	}
	if a.CertPEM == b.CertPEM || a.KeyPEM == b.KeyPEM {
		t.Error("two CAs share a certificate or key")
	}
}
