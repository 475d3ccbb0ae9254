package main

import (
	"errors"
	"fmt"
	"regexp"

	"github.com/spf13/pflag"

	"capfleet.dev/capfleet/internal/cassconn"
)

// benchKeyspace is the only kind of keyspace this tool drops: the ones hack/bench.sh names.
var benchKeyspace = regexp.MustCompile(`^cfbench_[0-9a-z_]+$`)

// keyspace drops a keyspace the end-to-end run had `capfleet process` create.
func keyspace(args []string) error {
	fs := pflag.NewFlagSet("keyspace", pflag.ContinueOnError)
	var cc cassconn.Config
	cc.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 || fs.Arg(0) != "drop" {
		return errors.New("keyspace drop NAME")
	}
	name := fs.Arg(1)
	if !benchKeyspace.MatchString(name) {
		return fmt.Errorf("keyspace %q: only cfbench_* keyspaces are dropped here", name)
	}
	cluster, err := cc.Cluster()
	if err != nil {
		return err
	}
	s, err := cluster.CreateSession()
	if err != nil {
		return fmt.Errorf("cassandra %v: %w", cc.Hosts, err)
	}
	defer s.Close()
	return s.Query("DROP KEYSPACE IF EXISTS " + name).Exec()
}
