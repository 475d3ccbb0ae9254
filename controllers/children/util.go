package children

import (
	"strconv"

	"k8s.io/apimachinery/pkg/util/intstr"
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func intOrString(port int) intstr.IntOrString { return intstr.FromInt32(int32(port)) }

func ptr[T any](v T) *T { return &v }
