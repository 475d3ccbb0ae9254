// Package testpki makes the throwaway certificates unit tests need: a CA no server has seen, to show that
// a client refuses what it cannot verify, or PEM files for a secret dir. The live services get theirs
// from their hack/ scripts (hack/lib.sh's pki_* helpers), not from here.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"
)

// CA is a self-signed certificate authority, valid for an hour around now, in PEM.
type CA struct {
	CertPEM string // CERTIFICATE
	KeyPEM  string // PRIVATE KEY (PKCS#8, ECDSA P-256)
}

// NewCA makes a CA named cn. Its certificate may also sign (digitalSignature), so the pair serves as a
// client certificate too: one that no server trusts.
func NewCA(t testing.TB, cn string) CA {
	t.Helper()
	return selfSigned(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
}

// NewServer makes a self-signed server certificate named cn for the addresses ips, which a client that
// trusts the certificate itself verifies.
func NewServer(t testing.TB, cn string, ips ...net.IP) CA {
	t.Helper()
	return selfSigned(t, &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, IPAddresses: ips, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// selfSigned signs tmpl with a new P-256 key, with a random serial, valid for an hour around now.
func selfSigned(t testing.TB, tmpl *x509.Certificate) CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62)); err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return CA{
		CertPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
	}
}
