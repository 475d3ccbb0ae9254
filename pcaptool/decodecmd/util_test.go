package decodecmd

import (
	"fmt"
	"strconv"
)

func itoa(v uint16) string { return strconv.Itoa(int(v)) }

func strconvF(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }

func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}
