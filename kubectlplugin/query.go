package kubectlplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
	"capfleet.dev/capfleet/query"
)

// topCommand is `capfleet query top` with a PIPELINE argument in place of the connection flags.
func topCommand(k *kube) *cobra.Command {
	return pipelineQuery(k, "top", "top PIPELINE", "The top talkers a PacketPipeline stored (capfleet query top, connected as the pipeline's processors are)")
}

// pcapCommand is `capfleet query packets` the same way.
func pcapCommand(k *kube) *cobra.Command {
	return pipelineQuery(k, "packets", "pcap PIPELINE -w FILE", "Packets a PacketPipeline stored, of a flow (--flow) or a filter and time range, written to a capture file")
}

// pipelineQuery takes the query subcommand sub, with all its flags and its code, and runs it connected
// to the keyspace, contact points and credentials of the named pipeline's processors. Connection flags
// the user sets win: through a port-forward the contact points are 127.0.0.1.
func pipelineQuery(k *kube, sub, use, short string) *cobra.Command {
	var cmd *cobra.Command
	for _, c := range query.NewCommand().Commands() {
		if c.Name() == sub {
			cmd = c
		}
	}
	if cmd == nil {
		panic("capfleet query has no " + sub + " subcommand")
	}
	// -n is kubectl's namespace; the query's own -n (top's count) keeps only its long name.
	flags := cmd.Flags()
	cmd.ResetFlags()
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Shorthand == "n" {
			c := *f
			c.Shorthand = ""
			f = &c
		}
		cmd.Flags().AddFlag(f)
	})
	run := cmd.RunE
	cmd.Use, cmd.Short, cmd.Args = use, short, cobra.ExactArgs(1)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, ns, err := k.client()
		if err != nil {
			return err
		}
		conn, err := pipelineConnection(cmd.Context(), c, ns, args[0])
		if err != nil {
			return err
		}
		if conn.secret != "" {
			dir, err := writeSecret(cmd.Context(), c, ns, conn.secret)
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			conn.args = append(conn.args, "--cassandra-secret-dir="+dir)
		}
		for _, a := range conn.args {
			name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			if value == "" && !strings.Contains(a, "=") {
				value = "true"
			}
			if cmd.Flags().Changed(name) {
				continue
			}
			if err := cmd.Flags().Set(name, value); err != nil {
				return fmt.Errorf("pipeline %s: %s: %w", args[0], a, err)
			}
		}
		return run(cmd, nil)
	}
	return cmd
}

type connection struct {
	args   []string // --keyspace and the --cassandra-* flags of the processors
	secret string   // the Secret mounted as their --cassandra-secret-dir, if any
}

// pipelineConnection reads what the operator gave the pipeline's processors: the operator alone knows
// its defaults, and its Deployment is where they are resolved.
func pipelineConnection(ctx context.Context, c client.Client, ns, name string) (connection, error) {
	var pp v1alpha1.PacketPipeline
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pp); err != nil {
		return connection{}, fmt.Errorf("PacketPipeline %s/%s: %w", ns, name, err)
	}
	if pp.Spec.Sinks.Cassandra == nil {
		return connection{}, fmt.Errorf("PacketPipeline %s/%s stores nothing in Cassandra (no spec.sinks.cassandra)", ns, name)
	}
	if pp.Status.Deployment == "" {
		return connection{}, fmt.Errorf("PacketPipeline %s/%s has no processor Deployment yet (status.deployment is empty)", ns, name)
	}
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: pp.Status.Deployment}, &d); err != nil {
		return connection{}, fmt.Errorf("the processors of PacketPipeline %s/%s: %w", ns, name, err)
	}
	var out connection
	for _, ctr := range d.Spec.Template.Spec.Containers {
		var secretDir string
		for _, a := range ctr.Args {
			switch {
			case strings.HasPrefix(a, "--keyspace="), strings.HasPrefix(a, "--cassandra-hosts="),
				strings.HasPrefix(a, "--cassandra-port="), a == "--cassandra-tls":
				out.args = append(out.args, a)
			case strings.HasPrefix(a, "--cassandra-secret-dir="):
				secretDir = strings.TrimPrefix(a, "--cassandra-secret-dir=")
			}
		}
		if secretDir != "" {
			out.secret = mountedSecret(d.Spec.Template.Spec, ctr, secretDir)
			if out.secret == "" {
				return connection{}, fmt.Errorf("the processors of PacketPipeline %s/%s read Cassandra credentials from %s, which mounts no Secret", ns, name, secretDir)
			}
		}
	}
	return out, nil
}

func mountedSecret(pod corev1.PodSpec, ctr corev1.Container, dir string) string {
	for _, m := range ctr.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
	}
	return ""
}

// writeSecret copies a Secret's keys into a new directory only the user can read, the form
// `--cassandra-secret-dir` takes: credentials never appear in arguments or the environment.
func writeSecret(ctx context.Context, c client.Client, ns, name string) (string, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return "", fmt.Errorf("the Cassandra credentials (Secret %s/%s): %w", ns, name, err)
	}
	dir, err := os.MkdirTemp("", "kubectl-capfleet-")
	if err != nil {
		return "", err
	}
	for k, v := range s.Data {
		if strings.ContainsAny(k, `/\`) || k == "." || k == ".." {
			os.RemoveAll(dir)
			return "", fmt.Errorf("Secret %s/%s: key %q is not a file name", ns, name, k)
		}
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}
