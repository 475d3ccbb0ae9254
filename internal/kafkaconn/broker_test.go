package kafkaconn_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"capfleet.dev/capfleet/internal/kafkaconn"
	"capfleet.dev/capfleet/internal/kafkatest"
	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/internal/testpki"
)

// roundTrip produces one record through cfg and reads it back from the start
// of a fresh topic, through a second client, as a consumer would.
func roundTrip(t *testing.T, cfg kafkaconn.Config) {
	t.Helper()
	topic := kafkatest.NewTopic(t, cfg, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	prod, err := cfg.NewClient(kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := &kgo.Record{Key: []byte("k1"), Value: []byte("frame bytes \x00\x01\x02"),
		Headers: []kgo.RecordHeader{{Key: "node", Value: []byte("n1")}}}
	if err := prod.ProduceSync(ctx, want).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cons, err := cfg.NewClient(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed from %s: %v", topic, err)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		got := recs[0]
		if len(recs) != 1 || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) ||
			len(got.Headers) != 1 || string(got.Headers[0].Value) != "n1" {
			t.Fatalf("consumed %d records, first %q=%q %v; want one %q=%q", len(recs), got.Key, got.Value, got.Headers, want.Key, want.Value)
		}
		return
	}
}

func TestRoundTripPlaintext(t *testing.T) {
	roundTrip(t, kafkatest.Plain(t))
}

func TestRoundTripSecure(t *testing.T) {
	cfg := kafkatest.Secure(t)
	// The script's SCRAM user has credentials for every mechanism the secure
	// listener enables; each must work through the same secret dir format.
	for _, mech := range []string{kafkaconn.MechanismScramSHA512, kafkaconn.MechanismScramSHA256, kafkaconn.MechanismPlain} {
		t.Run(mech, func(t *testing.T) {
			c := cfg
			c.SecretDir = testenv.CopyDir(t, cfg.SecretDir, map[string]string{kafkaconn.FileMechanism: mech})
			roundTrip(t, c)
		})
	}
}

func TestWrongPasswordIsAnAuthenticationError(t *testing.T) {
	cfg := kafkatest.Secure(t)
	for _, mech := range []string{kafkaconn.MechanismScramSHA512, kafkaconn.MechanismPlain} {
		t.Run(mech, func(t *testing.T) {
			c := cfg
			c.SecretDir = testenv.CopyDir(t, cfg.SecretDir, map[string]string{
				kafkaconn.FileMechanism: mech, kafkaconn.FilePassword: "not-the-password"})
			_, err := ping(t, c)
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("err = %v, want SASL_AUTHENTICATION_FAILED", err)
			}
			t.Logf("as expected: %v", err)
		})
	}
}

func TestUnknownUserIsAnAuthenticationError(t *testing.T) {
	cfg := kafkatest.Secure(t)
	cfg.SecretDir = testenv.CopyDir(t, cfg.SecretDir, map[string]string{kafkaconn.FileUsername: "nobody"})
	if _, err := ping(t, cfg); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("err = %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}

func TestUntrustedServerCertificateIsRefused(t *testing.T) {
	cfg := kafkatest.Secure(t)
	// Any CA but the script's: the server certificate must then fail verification.
	cfg.SecretDir = testenv.CopyDir(t, cfg.SecretDir, map[string]string{kafkaconn.FileCA: testpki.NewCA(t, "not the broker's CA").CertPEM})
	_, err := ping(t, cfg)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("err = %v, want an unknown-authority certificate error", err)
	}
}

func TestServerCertificateNamesLocalhost(t *testing.T) {
	cfg := kafkatest.Secure(t)
	// The certificate carries IP:127.0.0.1 and DNS:localhost, so both spellings verify.
	for i, b := range cfg.Brokers {
		cfg.Brokers[i] = strings.Replace(b, "127.0.0.1", "localhost", 1)
	}
	if _, err := ping(t, cfg); err != nil {
		t.Fatalf("via localhost: %v", err)
	}
}

func TestRoundTripMutualTLS(t *testing.T) {
	roundTrip(t, kafkatest.MTLS(t))
}

func TestMutualTLSRefusesClientsWithoutACertificate(t *testing.T) {
	cfg := kafkatest.MTLS(t)
	dir := testenv.CopyDir(t, cfg.SecretDir, nil)
	for _, f := range []string{kafkaconn.FileCert, kafkaconn.FileKey} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg.SecretDir = dir
	wantTLSAlert(t, cfg, "a client that sent no certificate")
}

func TestMutualTLSRefusesACertificateFromAnotherCA(t *testing.T) {
	cfg := kafkatest.MTLS(t)
	other := testpki.NewCA(t, "not the broker's CA")
	cfg.SecretDir = testenv.CopyDir(t, cfg.SecretDir, map[string]string{kafkaconn.FileCert: other.CertPEM, kafkaconn.FileKey: other.KeyPEM})
	wantTLSAlert(t, cfg, "a client whose certificate it cannot verify")
}

// wantTLSAlert checks that the mutual-TLS listener refuses cfg's client, described by who, in the handshake.
func wantTLSAlert(t *testing.T, cfg kafkaconn.Config, who string) {
	t.Helper()
	_, err := ping(t, cfg)
	if err == nil {
		t.Fatalf("the mutual-TLS listener answered %s", who)
	}
	// crypto/tls reports an alert from the peer as a net.OpError "remote error".
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || !strings.Contains(err.Error(), "tls:") {
		t.Fatalf("err = %v, want a TLS alert from the broker", err)
	}
	t.Logf("refused as expected: %v", err)
}

func ping(t *testing.T, cfg kafkaconn.Config) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bs, err := kafkatest.Ping(ctx, cfg)
	return len(bs), err
}

// benchProduce measures producing packet-sized records through cfg: what TLS
// and SASL cost a sensor relative to PLAINTEXT.
func benchProduce(b *testing.B, cfg kafkaconn.Config) {
	topic := kafkatest.NewTopic(b, cfg, 3)
	cl, err := cfg.NewClient(kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	frame := bytes.Repeat([]byte{0xab}, 1500)
	var failed error
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cl.Produce(context.Background(), &kgo.Record{Value: frame}, func(_ *kgo.Record, err error) {
			if err != nil && failed == nil {
				failed = err
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if failed != nil {
		b.Fatal(failed)
	}
}

func BenchmarkProducePlaintext(b *testing.B) { benchProduce(b, kafkatest.Plain(b)) }
func BenchmarkProduceSASLSSL(b *testing.B)   { benchProduce(b, kafkatest.Secure(b)) }
func BenchmarkProduceMutualTLS(b *testing.B) { benchProduce(b, kafkatest.MTLS(b)) }
