package flow

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// scalars counts the numeric fields of a value, through structs and arrays.
func scalars(v reflect.Value) int {
	switch v.Kind() {
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			n += scalars(v.Field(i))
		}
		return n
	case reflect.Array:
		return v.Len() * scalars(reflect.New(v.Type().Elem()).Elem())
	}
	return 1
}

// TestVisitCoversEveryField: a field added to cicFlow and not to visit would be lost by a restart.
func TestVisitCoversEveryField(t *testing.T) {
	var c cicFlow
	n := 0
	c.visit(func(*uint64) { n++ }, func(*int64) { n++ }, func(*float64) { n++ })
	if want := scalars(reflect.ValueOf(c)); n != want {
		t.Fatalf("visit hands %d fields, cicFlow has %d", n, want)
	}
}

// TestWelfordMatchesTwoPass: the one-pass figures, and those of two samples merged, equal the
// textbook two-pass ones.
func TestWelfordMatchesTwoPass(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		xs := make([]float64, 1+r.IntN(200))
		for i := range xs {
			xs[i] = math.Round(r.ExpFloat64() * 1e6)
		}
		cut := r.IntN(len(xs) + 1)
		var a, b, all welford
		for i, x := range xs {
			all.add(x)
			if i < cut {
				a.add(x)
			} else {
				b.add(x)
			}
		}
		sum, lo, hi := 0.0, math.Inf(1), math.Inf(-1)
		for _, x := range xs {
			sum, lo, hi = sum+x, min(lo, x), max(hi, x)
		}
		mean := sum / float64(len(xs))
		ss := 0.0
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		variance := 0.0
		if len(xs) > 1 {
			variance = ss / float64(len(xs)-1)
		}
		for name, w := range map[string]welford{"one pass": all, "merged": merged(a, b)} {
			if w.n != uint64(len(xs)) || !closeRel(w.sum, sum) || !closeRel(w.mean, mean) || !closeRel(w.variance(), variance) || w.min != lo || w.max != hi {
				t.Fatalf("%s: n %d sum %v mean %v var %v min %v max %v; two-pass: %d %v %v %v %v %v",
					name, w.n, w.sum, w.mean, w.variance(), w.min, w.max, len(xs), sum, mean, variance, lo, hi)
			}
		}
	}
}

func closeRel(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(math.Abs(a), math.Abs(b), 1) }
