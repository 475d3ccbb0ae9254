package children

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func intOrString(port int) intstr.IntOrString { return intstr.FromInt32(int32(port)) }

func ptr[T any](v T) *T { return &v }

// dnsPolicy keeps cluster DNS for pods in the node's network namespace, where the default would be the
// node's resolver; other pods keep the API server's default.
func dnsPolicy(hostNetwork bool) corev1.DNSPolicy {
	if hostNetwork {
		return corev1.DNSClusterFirstWithHostNet
	}
	return ""
}
