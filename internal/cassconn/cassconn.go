// Package cassconn turns the --cassandra-* flags and the files of a mounted
// secret directory into a gocql cluster configuration, so every capfleet
// component reaches Cassandra the same way and credentials never travel
// through flags or specs.
package cassconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"github.com/spf13/pflag"

	"capfleet.dev/capfleet/internal/secretdir"
)

// Names of the optional files in Config.SecretDir (the keys of a Kubernetes Secret).
const (
	FileUsername = "username"
	FilePassword = "password"
	FileCA       = "ca.crt"
)

// Defaults match what hack/cassandra.sh starts.
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 9042
)

// Timeouts: long enough for a busy single-node test cluster or a remote data
// centre, short enough that a dead node is noticed before Kafka's session
// timeout expires and the consumer group rebalances away from us.
const (
	RequestTimeout = 10 * time.Second
	ConnectTimeout = 10 * time.Second
)

// Config says how to reach Cassandra. Credentials live only in files under SecretDir.
type Config struct {
	Hosts     []string
	Port      int
	Keyspace  string
	TLS       bool
	SecretDir string
}

// AddFlags registers --cassandra-hosts, --cassandra-port, --cassandra-tls and
// --cassandra-secret-dir. The keyspace is left to each command, whose own flag
// says what it is for.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Hosts, "cassandra-hosts", []string{DefaultHost},
		"Cassandra contact points, host or host:port, comma-separated")
	fs.IntVar(&c.Port, "cassandra-port", DefaultPort, "CQL native port for contact points given without one")
	fs.BoolVar(&c.TLS, "cassandra-tls", false,
		"connect over TLS, verifying the node's certificate against "+FileCA+" in --cassandra-secret-dir (else the system roots)")
	fs.StringVar(&c.SecretDir, "cassandra-secret-dir", "",
		"directory with optional files "+FileUsername+", "+FilePassword+" (password authentication) and "+FileCA)
}

// Cluster returns a gocql configuration with authentication, TLS, token-aware
// routing and timeouts set. Errors name the flag or the file at fault.
func (c *Config) Cluster() (*gocql.ClusterConfig, error) {
	hosts, err := c.hosts()
	if err != nil {
		return nil, err
	}
	sec, err := readSecretDir(c.SecretDir)
	if err != nil {
		return nil, err
	}
	cl := gocql.NewCluster(hosts...)
	cl.Port = c.Port
	cl.Keyspace = c.Keyspace
	// Protocol v4 is the newest gocql v1 speaks and every Cassandra since 2.2
	// accepts; fixing it saves the probe that otherwise logs a spurious error.
	cl.ProtoVersion = 4
	cl.Timeout = RequestTimeout
	cl.ConnectTimeout = ConnectTimeout
	// LOCAL_QUORUM keeps reads and writes consistent with each other at any
	// replication factor without waiting on remote data centres.
	cl.Consistency = gocql.LocalQuorum
	// Token-aware routing sends each statement to a replica of its partition,
	// saving the coordinator hop on every write of the pipeline.
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy())
	cl.RetryPolicy = &gocql.ExponentialBackoffRetryPolicy{NumRetries: 3, Min: 100 * time.Millisecond, Max: 2 * time.Second}
	cl.ReconnectionPolicy = &gocql.ExponentialReconnectionPolicy{MaxRetries: 10, InitialInterval: time.Second, MaxInterval: 30 * time.Second}

	auth, err := sec.authenticator()
	if err != nil {
		return nil, err
	}
	if auth != nil {
		cl.Authenticator = *auth
	}
	if c.TLS {
		tc, err := sec.tlsConfig()
		if err != nil {
			return nil, err
		}
		cl.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: true}
	} else if sec.Has(FileCA) {
		// A CA is only ever given to verify a TLS listener: ignoring it would
		// send the password in clear text where the operator meant TLS.
		return nil, fmt.Errorf("cassandra: %s is present but --cassandra-tls is off", sec.Path(FileCA))
	}
	return cl, nil
}

// Session connects with Cluster's configuration.
func (c *Config) Session() (*gocql.Session, error) {
	cl, err := c.Cluster()
	if err != nil {
		return nil, err
	}
	s, err := cl.CreateSession()
	if err != nil {
		where := fmt.Sprintf("cassandra %s (port %d)", strings.Join(cl.Hosts, ","), cl.Port)
		if isAuthError(err) {
			return nil, fmt.Errorf("%s: authentication failed, check %s: %w", where, c.credentialSource(), err)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return s, nil
}

// isAuthError tells a refused login from a node that is down or unreachable,
// which call for different fixes. gocql v1 flattens the server's error into
// text, so the server's own wording is all there is to go by.
func isAuthError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "password are incorrect") || strings.Contains(msg, "authentication required") ||
		strings.Contains(msg, "is not permitted to log in")
}

func (c *Config) credentialSource() string {
	if c.SecretDir == "" {
		return "--cassandra-secret-dir (not set, so no credentials were sent)"
	}
	return fmt.Sprintf("%s and %s in --cassandra-secret-dir",
		filepath.Join(c.SecretDir, FileUsername), filepath.Join(c.SecretDir, FilePassword))
}

func (c *Config) hosts() ([]string, error) {
	if c.Port < 1 || c.Port > 65535 {
		return nil, fmt.Errorf("cassandra: --cassandra-port %d is not a TCP port", c.Port)
	}
	var out []string
	for _, h := range c.Hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if strings.Contains(h, ":") && net.ParseIP(h) == nil {
			host, port, err := net.SplitHostPort(h)
			if err != nil || host == "" {
				return nil, fmt.Errorf("cassandra: --cassandra-hosts entry %q is not host or host:port", h)
			}
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				return nil, fmt.Errorf("cassandra: --cassandra-hosts entry %q has a bad port", h)
			}
		}
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, errors.New("cassandra: --cassandra-hosts is empty")
	}
	return out, nil
}

// readSecretDir loads the credential files this client knows.
func readSecretDir(dir string) (secretDir, error) {
	d, err := secretdir.Read(dir, "cassandra: --cassandra-secret-dir", FileUsername, FilePassword, FileCA)
	return secretDir{d}, err
}

// secretDir adds this client's credential logic to the files of a mounted Secret.
type secretDir struct{ secretdir.Dir }

// authenticator returns nil when the directory holds no credentials at all, so
// a cluster without authentication needs no secret.
func (s secretDir) authenticator() (*gocql.PasswordAuthenticator, error) {
	if !s.Has(FileUsername) && !s.Has(FilePassword) {
		return nil, nil
	}
	for _, pair := range [][2]string{{FileUsername, FilePassword}, {FilePassword, FileUsername}} {
		if !s.Has(pair[1]) {
			return nil, fmt.Errorf("cassandra secret: %s is present but %s is missing", s.Path(pair[0]), s.Path(pair[1]))
		}
	}
	user, pass := s.Text(FileUsername), s.Text(FilePassword)
	for _, f := range []struct{ name, v string }{{FileUsername, user}, {FilePassword, pass}} {
		if f.v == "" {
			return nil, fmt.Errorf("cassandra secret %s: empty", s.Path(f.name))
		}
	}
	return &gocql.PasswordAuthenticator{Username: user, Password: pass}, nil
}

func (s secretDir) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.Has(FileCA) {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(s.Bytes(FileCA)) {
			return nil, fmt.Errorf("cassandra secret %s: no PEM certificate found", s.Path(FileCA))
		}
		tc.RootCAs = pool
	}
	return tc, nil
}
