// Command kafkaready waits until the broker described by hack/kafka.sh's env
// file answers a metadata request on each of its listeners (PLAINTEXT,
// SASL_SSL, mutual-TLS SSL); hack/kafka.sh uses it as its readiness probe.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"capfleet.dev/capfleet/internal/kafkatest"
)

func main() {
	envPath := flag.String("env", "", "env file written by hack/kafka.sh (default: the repository's .run/kafka/env)")
	timeout := flag.Duration("timeout", 10*time.Second, "how long to keep trying")
	flag.Parse()
	if err := run(*envPath, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "kafkaready:", err)
		os.Exit(1)
	}
}

func run(envPath string, timeout time.Duration) error {
	if envPath == "" {
		p, err := kafkatest.EnvPath()
		if err != nil {
			return err
		}
		envPath = p
	}
	env, err := kafkatest.ReadEnv(envPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return kafkatest.WaitReady(ctx, env.Plain(), env.Secure(), env.MTLS())
}
