// Package kafkaconn turns the --kafka-* flags and the files of a mounted secret
// directory into franz-go client options, so every capfleet component connects
// to Kafka the same way and secrets never travel through flags or specs.
package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"capfleet.dev/capfleet/internal/secretdir"
)

// Names of the optional files in Config.SecretDir (the keys of a Kubernetes Secret).
const (
	FileCA        = "ca.crt"
	FileCert      = "tls.crt"
	FileKey       = "tls.key"
	FileMechanism = "sasl.mechanism"
	FileUsername  = "username"
	FilePassword  = "password"
)

// Supported SASL mechanisms, spelled as Kafka spells them.
const (
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
	MechanismPlain       = "PLAIN"
)

// DefaultBrokers is where hack/kafka.sh puts its PLAINTEXT listener.
const DefaultBrokers = "127.0.0.1:9092"

// Config says how to reach Kafka. Credentials live only in files under SecretDir.
type Config struct {
	Brokers   []string
	TLS       bool
	SecretDir string
	ClientID  string
}

// AddFlags registers --kafka-brokers, --kafka-tls and --kafka-secret-dir.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Brokers, "kafka-brokers", []string{DefaultBrokers},
		"Kafka bootstrap brokers, host:port, comma-separated")
	fs.BoolVar(&c.TLS, "kafka-tls", false,
		"connect to Kafka over TLS (CA from "+FileCA+" in --kafka-secret-dir, else the system roots)")
	fs.StringVar(&c.SecretDir, "kafka-secret-dir", "",
		"directory with optional files "+strings.Join([]string{FileCA, FileCert, FileKey, FileMechanism, FileUsername, FilePassword}, ", ")+
			" ("+FileMechanism+": "+strings.Join(mechanisms(), "|")+")")
}

// Options returns the client options for seed brokers, TLS and SASL. Errors name
// the flag or the file at fault.
func (c *Config) Options() ([]kgo.Opt, error) {
	brokers, err := c.brokers()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if c.ClientID != "" {
		opts = append(opts, kgo.ClientID(c.ClientID))
	}
	sec, err := readSecretDir(c.SecretDir)
	if err != nil {
		return nil, err
	}
	if c.TLS {
		tc, err := sec.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	} else if sec.Has(FileCert) || sec.Has(FileKey) {
		// A client certificate is only ever meant for a TLS listener: ignoring it
		// would connect in clear text where the operator asked for mutual TLS.
		return nil, fmt.Errorf("kafka: %s has a client certificate (%s/%s) but --kafka-tls is off",
			c.SecretDir, FileCert, FileKey)
	}
	mech, err := sec.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// NewClient builds a client from the options plus any extra ones (topics, groups...).
func (c *Config) NewClient(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}

func (c *Config) brokers() ([]string, error) {
	var out []string
	for _, b := range c.Brokers {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return nil, fmt.Errorf("kafka: --kafka-brokers entry %q is not host:port", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("kafka: --kafka-brokers is empty")
	}
	return out, nil
}

func mechanisms() []string {
	return []string{MechanismScramSHA256, MechanismScramSHA512, MechanismPlain}
}

// readSecretDir loads the credential files this client knows.
func readSecretDir(dir string) (secretDir, error) {
	d, err := secretdir.Read(dir, "kafka: --kafka-secret-dir", FileCA, FileCert, FileKey, FileMechanism, FileUsername, FilePassword)
	return secretDir{d}, err
}

// secretDir adds this client's credential logic to the files of a mounted Secret.
type secretDir struct{ secretdir.Dir }

func (s secretDir) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.Has(FileCA) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(s.Bytes(FileCA)) {
			return nil, fmt.Errorf("kafka secret %s: no PEM certificate found", s.Path(FileCA))
		}
		tc.RootCAs = pool
	}
	switch {
	case s.Has(FileCert) && s.Has(FileKey):
		cert, err := tls.X509KeyPair(s.Bytes(FileCert), s.Bytes(FileKey))
		if err != nil {
			return nil, fmt.Errorf("kafka secret %s, %s: %w", s.Path(FileCert), s.Path(FileKey), err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case s.Has(FileCert):
		return nil, fmt.Errorf("kafka secret: %s is present but %s is missing", s.Path(FileCert), s.Path(FileKey))
	case s.Has(FileKey):
		return nil, fmt.Errorf("kafka secret: %s is present but %s is missing", s.Path(FileKey), s.Path(FileCert))
	}
	return tc, nil
}

func (s secretDir) saslMechanism() (sasl.Mechanism, error) {
	if !s.Has(FileMechanism) {
		if s.Has(FileUsername) || s.Has(FilePassword) {
			// Credentials without a mechanism would be dropped silently and the
			// broker would then refuse the connection with a far vaguer error.
			return nil, fmt.Errorf("kafka secret: %s is missing (one of %s) while %s/%s are present",
				s.Path(FileMechanism), strings.Join(mechanisms(), ", "), FileUsername, FilePassword)
		}
		return nil, nil
	}
	mech := strings.ToUpper(strings.TrimSpace(string(s.Bytes(FileMechanism))))
	user, pass := s.Text(FileUsername), s.Text(FilePassword)
	for _, f := range []struct{ name, v string }{{FileUsername, user}, {FilePassword, pass}} {
		if !s.Has(f.name) {
			return nil, fmt.Errorf("kafka secret: %s is %s but %s is missing", s.Path(FileMechanism), mech, s.Path(f.name))
		}
		if f.v == "" {
			return nil, fmt.Errorf("kafka secret %s: empty", s.Path(f.name))
		}
	}
	switch mech {
	case MechanismScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), nil
	case MechanismScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), nil
	case MechanismPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), nil
	}
	return nil, fmt.Errorf("kafka secret %s: unsupported SASL mechanism %q (want one of %s)",
		s.Path(FileMechanism), mech, strings.Join(mechanisms(), ", "))
}
