// Package kubectlplugin is `kubectl capfleet`: the capfleet binary run under the name kubectl-capfleet
// (krew installs it so, from plugins/capfleet.yaml) or as `capfleet kubectl`.
//
//	kubectl capfleet status [-A | -n NS] [NAME]      each resource with its children, nodes and figures
//	kubectl capfleet top PIPELINE [query top flags]  the top talkers a pipeline stored
//	kubectl capfleet pcap PIPELINE [query packets flags] -w out.pcap
//
// top and pcap are `capfleet query top` and `capfleet query packets` themselves: the plugin only finds
// the Cassandra keyspace, contact points and credentials the pipeline's processors use, so a user names
// a pipeline instead of a keyspace and never handles a password.
package kubectlplugin

import (
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"capfleet.dev/capfleet/api/v1alpha1"
)

// BinaryName is the name kubectl looks for on PATH for `kubectl capfleet`.
const BinaryName = "kubectl-capfleet"

// kube holds kubectl's connection flags and makes the client from them.
type kube struct {
	kubeconfig, context, namespace string
	allNamespaces                  bool
}

func (k *kube) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&k.context, "context", "", "kubeconfig context")
	f.StringVarP(&k.namespace, "namespace", "n", "", "namespace (default the context's)")
}

func (k *kube) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: k.context, Context: clientcmdapi.Context{Namespace: k.namespace}})
}

// client returns an API client and the namespace to work in.
func (k *kube) client() (client.Client, string, error) {
	cc := k.clientConfig()
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(rc, client.Options{Scheme: scheme})
	return c, ns, err
}

// NewCommand returns the plugin's root command, named use ("kubectl capfleet" under kubectl, "kubectl"
// as a subcommand of capfleet).
func NewCommand(use string) *cobra.Command {
	k := &kube{}
	words := strings.Fields(use)
	root := &cobra.Command{
		Use:           words[len(words)-1],
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: use},
		Short:         "capfleet's capture resources from kubectl: status, top talkers, packets as a pcap",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	k.addFlags(root)
	root.AddCommand(statusCommand(k), topCommand(k), pcapCommand(k))
	return root
}
