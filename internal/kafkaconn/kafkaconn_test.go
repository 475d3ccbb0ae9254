package kafkaconn

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/internal/testpki"
)

func client(t *testing.T, c Config) *kgo.Client {
	t.Helper()
	cl, err := c.NewClient()
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestAddFlags(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	c.AddFlags(fs)
	if got := strings.Join(c.Brokers, ","); got != "127.0.0.1:9092" {
		t.Fatalf("default brokers = %q", got)
	}
	dir := t.TempDir()
	if err := fs.Parse([]string{"--kafka-brokers", "a:1,b:2", "--kafka-tls", "--kafka-secret-dir", dir}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Brokers, ","); got != "a:1,b:2" || !c.TLS || c.SecretDir != dir {
		t.Fatalf("parsed %+v", c)
	}
}

func TestOptionsPlain(t *testing.T) {
	cl := client(t, Config{Brokers: []string{"127.0.0.1:9092", " 127.0.0.2:9092 "}, ClientID: "unit"})
	if got := cl.OptValue(kgo.SeedBrokers).([]string); strings.Join(got, ",") != "127.0.0.1:9092,127.0.0.2:9092" {
		t.Errorf("seeds = %v", got)
	}
	if got := cl.OptValue(kgo.ClientID); got != "unit" {
		t.Errorf("client id = %v", got)
	}
	if got := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); got != nil {
		t.Errorf("TLS set without --kafka-tls")
	}
	if got := cl.OptValue(kgo.SASL).([]sasl.Mechanism); len(got) != 0 {
		t.Errorf("SASL set without a secret dir: %v", got)
	}
}

func TestOptionsSecure(t *testing.T) {
	ca := testpki.NewCA(t, "kafkaconn test") // as the CA and as the client certificate
	cert, key := ca.CertPEM, ca.KeyPEM
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "scram-sha-512\n"} {
		t.Run(strings.TrimSpace(mech), func(t *testing.T) {
			dir := testenv.WriteDir(t, map[string]string{
				FileCA: cert, FileCert: cert, FileKey: key,
				FileMechanism: mech, FileUsername: "capfleet\n", FilePassword: "s3cret pass\n",
			})
			cl := client(t, Config{Brokers: []string{"127.0.0.1:9093"}, TLS: true, SecretDir: dir})
			tc := cl.OptValue(kgo.DialTLSConfig).(*tls.Config)
			if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.MinVersion != tls.VersionTLS12 {
				t.Fatalf("TLS config = %+v", tc)
			}
			ms := cl.OptValue(kgo.SASL).([]sasl.Mechanism)
			if len(ms) != 1 || ms[0].Name() != strings.ToUpper(strings.TrimSpace(mech)) {
				t.Fatalf("SASL = %v", ms)
			}
		})
	}
}

func TestOptionsTLSWithoutSecretUsesSystemRoots(t *testing.T) {
	cl := client(t, Config{Brokers: []string{"k:9093"}, TLS: true})
	tc := cl.OptValue(kgo.DialTLSConfig).(*tls.Config)
	if tc == nil || tc.RootCAs != nil {
		t.Fatalf("TLS config = %+v, want one with system roots (nil RootCAs)", tc)
	}
}

func TestOptionsErrors(t *testing.T) {
	ca := testpki.NewCA(t, "kafkaconn test") // as the CA and as the client certificate
	cert, key := ca.CertPEM, ca.KeyPEM
	missing := filepath.Join(t.TempDir(), "nope")
	cases := []struct {
		name  string
		cfg   Config
		files map[string]string // when set, a secret dir with these files replaces cfg.SecretDir
		want  []string          // substrings the error must hold
	}{
		{name: "no brokers", cfg: Config{Brokers: []string{" ", ""}}, want: []string{"--kafka-brokers is empty"}},
		{name: "broker without port", cfg: Config{Brokers: []string{"localhost"}}, want: []string{`"localhost"`, "host:port"}},
		{name: "secret dir missing", cfg: Config{Brokers: []string{"h:1"}, SecretDir: missing}, want: []string{missing, "no such file"}},
		{name: "bad mechanism", files: map[string]string{FileMechanism: "GSSAPI", FileUsername: "u", FilePassword: "p"},
			want: []string{FileMechanism, `unsupported SASL mechanism "GSSAPI"`, "SCRAM-SHA-512"}},
		{name: "password missing", files: map[string]string{FileMechanism: "SCRAM-SHA-512", FileUsername: "u"},
			want: []string{FilePassword + " is missing"}},
		{name: "username empty", files: map[string]string{FileMechanism: "PLAIN", FileUsername: "\n", FilePassword: "p"},
			want: []string{FileUsername + ": empty"}},
		{name: "credentials without mechanism", files: map[string]string{FileUsername: "u", FilePassword: "p"},
			want: []string{FileMechanism + " is missing"}},
		{name: "bad CA", cfg: Config{TLS: true}, files: map[string]string{FileCA: "not a cert"},
			want: []string{FileCA, "no PEM certificate"}},
		{name: "cert without key", cfg: Config{TLS: true}, files: map[string]string{FileCert: cert},
			want: []string{FileCert + " is present but", FileKey + " is missing"}},
		{name: "key without cert", cfg: Config{TLS: true}, files: map[string]string{FileKey: key},
			want: []string{FileKey + " is present but", FileCert + " is missing"}},
		{name: "mismatched key pair", cfg: Config{TLS: true}, files: map[string]string{FileCert: cert, FileKey: cert},
			want: []string{FileCert, FileKey}},
		{name: "client cert without TLS", files: map[string]string{FileCert: cert, FileKey: key},
			want: []string{"client certificate", "--kafka-tls is off"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Brokers == nil {
				cfg.Brokers = []string{"127.0.0.1:9093"}
			}
			if tc.files != nil {
				cfg.SecretDir = testenv.WriteDir(t, tc.files)
			}
			_, err := cfg.Options()
			if err == nil {
				t.Fatal("want an error, got none")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
