package cassconn

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gocql/gocql"
	"github.com/spf13/pflag"

	"capfleet.dev/capfleet/internal/testenv"
	"capfleet.dev/capfleet/internal/testpki"
)

func TestFlagsDefaultsAndParsing(t *testing.T) {
	var c Config
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if len(c.Hosts) != 1 || c.Hosts[0] != "127.0.0.1" || c.Port != 9042 || c.TLS || c.SecretDir != "" {
		t.Fatalf("defaults: %+v", c)
	}
	if err := fs.Parse([]string{"--cassandra-hosts", "a,b:9142", "--cassandra-port", "19042",
		"--cassandra-tls", "--cassandra-secret-dir", "/s"}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Hosts, "|") != "a|b:9142" || c.Port != 19042 || !c.TLS || c.SecretDir != "/s" {
		t.Fatalf("parsed: %+v", c)
	}
}

func TestClusterWithoutSecret(t *testing.T) {
	c := Config{Hosts: []string{" 127.0.0.1 ", "", "::1", "[::1]:9142"}, Port: 9042, Keyspace: "ks"}
	cl, err := c.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cl.Hosts, "|") != "127.0.0.1|::1|[::1]:9142" {
		t.Errorf("hosts %q", cl.Hosts)
	}
	if cl.Port != 9042 || cl.Keyspace != "ks" || cl.Authenticator != nil || cl.SslOpts != nil {
		t.Errorf("cluster %+v", cl)
	}
	if cl.Consistency != gocql.LocalQuorum || cl.Timeout != RequestTimeout || cl.ConnectTimeout != ConnectTimeout {
		t.Errorf("consistency/timeouts: %v %v %v", cl.Consistency, cl.Timeout, cl.ConnectTimeout)
	}
	if cl.PoolConfig.HostSelectionPolicy == nil {
		t.Error("no host selection policy: statements would not be routed to their replicas")
	}
}

func TestClusterPasswordAndTLS(t *testing.T) {
	dir := testenv.WriteDir(t, map[string]string{
		FileUsername: "capfleet\n", FilePassword: "s3cret with space\r\n", FileCA: testpki.NewCA(t, "test CA").CertPEM,
	})
	c := Config{Hosts: []string{"127.0.0.1"}, Port: 9042, TLS: true, SecretDir: dir}
	cl, err := c.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	auth, ok := cl.Authenticator.(gocql.PasswordAuthenticator)
	if !ok || auth.Username != "capfleet" || auth.Password != "s3cret with space" {
		t.Errorf("authenticator %#v", cl.Authenticator)
	}
	if cl.SslOpts == nil || !cl.SslOpts.EnableHostVerification || cl.SslOpts.Config == nil ||
		cl.SslOpts.Config.RootCAs == nil || cl.SslOpts.Config.InsecureSkipVerify {
		t.Errorf("TLS options must verify the node against ca.crt: %+v", cl.SslOpts)
	}
}

func TestClusterTLSWithSystemRoots(t *testing.T) {
	cl, err := (&Config{Hosts: []string{"db"}, Port: 9042, TLS: true}).Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if cl.SslOpts == nil || cl.SslOpts.Config.RootCAs != nil || !cl.SslOpts.EnableHostVerification {
		t.Errorf("want verification against system roots: %+v", cl.SslOpts)
	}
}

func TestClusterErrors(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		cfg  Config
		want []string // every piece must appear in the error
	}{
		{"no hosts", Config{Hosts: []string{" ", ""}, Port: 9042}, []string{"--cassandra-hosts is empty"}},
		{"bad port flag", Config{Hosts: []string{"h"}, Port: 0}, []string{"--cassandra-port 0"}},
		{"bad host port", Config{Hosts: []string{"h:x"}, Port: 9042}, []string{`"h:x"`, "bad port"}},
		{"bad host syntax", Config{Hosts: []string{"a:b:c"}, Port: 9042}, []string{`"a:b:c"`}},
		{"missing secret dir", Config{Hosts: []string{"h"}, Port: 9042, SecretDir: "/nonexistent/capfleet"},
			[]string{"--cassandra-secret-dir", "/nonexistent/capfleet"}},
		{"secret dir is a file", Config{Hosts: []string{"h"}, Port: 9042, SecretDir: notDir},
			[]string{notDir, "not a directory"}},
		{"password missing", Config{Hosts: []string{"h"}, Port: 9042,
			SecretDir: testenv.WriteDir(t, map[string]string{FileUsername: "u"})}, []string{"/" + FilePassword + " is missing"}},
		{"username missing", Config{Hosts: []string{"h"}, Port: 9042,
			SecretDir: testenv.WriteDir(t, map[string]string{FilePassword: "p"})}, []string{"/" + FileUsername + " is missing"}},
		{"empty password", Config{Hosts: []string{"h"}, Port: 9042,
			SecretDir: testenv.WriteDir(t, map[string]string{FileUsername: "u", FilePassword: "\n"})}, []string{"/" + FilePassword + ": empty"}},
		{"bad CA", Config{Hosts: []string{"h"}, Port: 9042, TLS: true,
			SecretDir: testenv.WriteDir(t, map[string]string{FileCA: "not a certificate"})}, []string{"/" + FileCA, "no PEM certificate"}},
		{"CA without TLS", Config{Hosts: []string{"h"}, Port: 9042,
			SecretDir: testenv.WriteDir(t, map[string]string{FileCA: testpki.NewCA(t, "test CA").CertPEM})}, []string{"/" + FileCA, "--cassandra-tls is off"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := tc.cfg.Cluster()
			if err == nil {
				t.Fatalf("want error, got cluster %+v", cl)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestErrorsNeverShowThePassword(t *testing.T) {
	dir := testenv.WriteDir(t, map[string]string{FilePassword: "hunter2-secret"})
	_, err := (&Config{Hosts: []string{"h"}, Port: 9042, SecretDir: dir}).Cluster()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}

// A node that is down must not be reported as a refused login: the fixes differ.
func TestSessionToClosedPortIsNotAnAuthError(t *testing.T) {
	_, portText, _ := net.SplitHostPort(testenv.FreeAddr(t))
	port, _ := strconv.Atoi(portText)
	dir := testenv.WriteDir(t, map[string]string{FileUsername: "u", FilePassword: "p"})
	s, err := (&Config{Hosts: []string{"127.0.0.1"}, Port: port, SecretDir: dir}).Session()
	if err == nil {
		s.Close()
		t.Fatal("session to a closed port")
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("cassandra 127.0.0.1 (port %d)", port)) || strings.Contains(msg, "authentication failed") {
		t.Fatalf("error %q", msg)
	}
}
