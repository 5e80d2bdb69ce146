package steering

import (
	"math"
	"reflect"
	"strconv"
)

// Number is a score or utility as reported: written as the shortest
// decimal that reads back as the same value, and as null when it is NaN or
// infinite (which JSON cannot carry).
type Number float64

// Finite reports whether n is a usable value.
func (n Number) Finite() bool { return !math.IsNaN(float64(n)) && !math.IsInf(float64(n), 0) }

func (n Number) MarshalJSON() ([]byte, error) {
	if !n.Finite() {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, float64(n), 'g', -1, 64), nil
}

func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*n = Number(v)
	return err
}

var reflectTypeOfInfo = reflect.TypeOf(Info{})
