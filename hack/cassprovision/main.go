// Command provision is run by hack/cassandra.sh: it waits until the node
// answers CQL as the superuser, then creates (or resets) the unprivileged
// login role that tests and the pipeline use (hack/cassandra.sh always starts
// from empty data, so the role never exists before). Passwords come from files only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gocql/gocql"

	"capfleet.dev/capfleet/internal/cassconn"
)

func main() {
	var (
		port     = flag.Int("port", cassconn.DefaultPort, "CQL port on 127.0.0.1")
		tls      = flag.Bool("tls", false, "connect over TLS (ca.crt in --admin-secret-dir)")
		admin    = flag.String("admin-secret-dir", "", "directory with the superuser's username and password files")
		client   = flag.String("client-secret-dir", "", "directory with the username and password of the role to create")
		deadline = flag.Duration("timeout", 3*time.Minute, "how long to wait for CQL to answer")
		pidFile  = flag.String("pid-file", "", "give up at once when the process in this file has died")
	)
	flag.Parse()
	if err := run(*port, *tls, *admin, *client, *deadline, *pidFile); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run(port int, tls bool, admin, client string, deadline time.Duration, pidFile string) error {
	if admin == "" || client == "" {
		return errors.New("--admin-secret-dir and --client-secret-dir are required")
	}
	cfg := cassconn.Config{Hosts: []string{"127.0.0.1"}, Port: port, TLS: tls, SecretDir: admin}
	s, err := waitForCQL(cfg, deadline, pidFile)
	if err != nil {
		return err
	}
	defer s.Close()
	if client == admin {
		return nil
	}
	user, err := readFile(client, cassconn.FileUsername)
	if err != nil {
		return err
	}
	pass, err := readFile(client, cassconn.FilePassword)
	if err != nil {
		return err
	}
	// The role may create keyspaces and owns what it creates, as the pipeline
	// does in production, but is no superuser: tests then see real permission
	// errors instead of a superuser's blanket access.
	stmts := []string{
		// CQL takes a role's password only as a literal, not a bind marker.
		fmt.Sprintf("CREATE ROLE IF NOT EXISTS %s WITH LOGIN = true AND SUPERUSER = false AND PASSWORD = %s", quoteIdent(user), quoteLiteral(pass)),
		fmt.Sprintf("GRANT CREATE ON ALL KEYSPACES TO %s", quoteIdent(user)),
	}
	for i, q := range stmts {
		if err := execRetrying(s, q, time.Now().Add(time.Minute)); err != nil {
			// Name the statement without its password literal.
			return fmt.Errorf("statement %d (%s): %w", i+1, strings.SplitN(q, " WITH", 2)[0], err)
		}
	}
	return nil
}

// execRetrying repeats an idempotent statement until it succeeds: on a loaded
// machine a young node answers its first writes with timeouts.
func execRetrying(s *gocql.Session, q string, until time.Time) error {
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := s.Query(q).Exec()
		if err == nil || time.Now().Add(wait).After(until) {
			return err
		}
		fmt.Fprintf(os.Stderr, "provision: retrying in %v: %v\n", wait, err)
		time.Sleep(wait)
	}
}

// waitForCQL retries until a login succeeds: the native port opens before the
// default superuser exists, so an authentication error is also transient here.
func waitForCQL(cfg cassconn.Config, deadline time.Duration, pidFile string) (*gocql.Session, error) {
	end := time.Now().Add(deadline)
	var last error
	for time.Now().Before(end) {
		if pidFile != "" && !alive(pidFile) {
			return nil, fmt.Errorf("the Cassandra process of %s has exited (last CQL error: %v)", pidFile, last)
		}
		cl, err := cfg.Cluster()
		if err != nil {
			return nil, err
		}
		cl.ConnectTimeout = 5 * time.Second
		cl.Timeout = 20 * time.Second
		// One try per pool connection (0 would make gocql v1.7.0 pool a nil connection).
		cl.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: time.Second}
		cl.Logger = quietLogger{}
		s, err := cl.CreateSession()
		if err == nil {
			if err = s.Query("SELECT release_version FROM system.local").Exec(); err == nil {
				return s, nil
			}
			s.Close()
		}
		last = err
		time.Sleep(time.Second)
	}
	return nil, fmt.Errorf("CQL on 127.0.0.1:%d did not answer within %v: %v", cfg.Port, deadline, last)
}

func alive(pidFile string) bool {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join("/proc", strings.TrimSpace(string(b))))
	return err == nil
}

func readFile(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", fmt.Errorf("%s: empty", filepath.Join(dir, name))
	}
	return v, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// quietLogger drops gocql's per-attempt connection noise while the node boots.
type quietLogger struct{}

func (quietLogger) Print(...any)          {}
func (quietLogger) Printf(string, ...any) {}
func (quietLogger) Println(...any)        {}
