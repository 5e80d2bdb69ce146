package configs

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Struct tags the tree check reads beside mapstructure's:
//
//	signed:"true"  the number may be negative (weights, means, bounds)
//	unset:"true"   0 means "not set" and is replaced by a default, so a 0
//	               written there is refused rather than silently replaced
//
// Every other number must not be negative.

// treeCheck walks a config's YAML tree, after the environment's overrides,
// against the Config type, before anything is decoded: every key must be
// one the type has, every value must be of its key's type (no weak
// conversions: true is no number, 3.5 no whole number, 1e20 no int), no
// number may be negative unless its key allows it, and no 0 may stand
// where it would be read as unset. It normalises what it accepts in place
// (a quoted "10" for a number becomes 10, an int for a string its digits),
// so that the decode that follows converts nothing.
type treeCheck struct {
	file  string
	env   map[string]string // key path → the variable that set it
	errs  Errors
	paths map[string]bool // the keys errs are about
}

// dropped stands for a value the check refused: its key is removed from
// the tree, so that the decode and the rest of the checks go on with the
// key's default and every other problem is reported in the same run.
var dropped = new(struct{})

func (c *treeCheck) bad(path, format string, args ...any) {
	if c.paths == nil {
		c.paths = map[string]bool{}
	}
	c.paths[path] = true
	msg := fmt.Sprintf(format, args...)
	if v, ok := c.env[path]; ok {
		c.errs = append(c.errs, fmt.Sprintf("the environment variable %s sets %s: %s (config file %s)", v, path, msg, c.file))
		return
	}
	c.errs = append(c.errs, fmt.Sprintf("%s:%s: %s", c.file, path, msg))
}

// about reports whether a "file:key: message" line is about a key the
// check refused, or one under it.
func (c *treeCheck) about(line string) bool {
	key, _, ok := strings.Cut(strings.TrimPrefix(line, c.file+":"), ": ")
	if !ok {
		return false
	}
	for p := range c.paths {
		if key == p || strings.HasPrefix(key, p+".") || strings.HasPrefix(key, p+"[") {
			return true
		}
	}
	return false
}

// rules are what a field's tags allow its numbers.
type rules struct{ signed, unset bool }

func rulesOf(f reflect.StructField) rules {
	return rules{signed: f.Tag.Get("signed") == "true", unset: f.Tag.Get("unset") == "true"}
}

// value checks v, found at path, against t, and returns v as the decode
// should see it.
func (c *treeCheck) value(path string, v any, t reflect.Type, r rules) any {
	if t.Kind() == reflect.Pointer {
		if v == nil {
			return nil
		}
		t = t.Elem()
	}
	if v == nil {
		// A key with nothing after it (`timeout:`) is read as left out:
		// the decode keeps the default.
		return nil
	}
	if t == reflect.TypeFor[time.Duration]() {
		return c.duration(path, v, r)
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			c.bad(path, "expected a mapping, got %s", kindOf(v))
			return dropped
		}
		fields := map[string]reflect.StructField{}
		for i := range t.NumField() {
			if name := tagName(t.Field(i)); name != "" && name != "-" {
				fields[name] = t.Field(i)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			at := strings.TrimPrefix(path+"."+k, ".")
			f, ok := fields[k]
			if !ok {
				c.bad(at, "unknown key")
				delete(m, k)
				continue
			}
			c.set(m, k, c.value(at, m[k], f.Type, rulesOf(f)))
		}
		return m
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			c.bad(path, "expected a mapping, got %s", kindOf(v))
			return dropped
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k != strings.ToLower(k) {
				// viper reads every key in lower case; a name written
				// otherwise would not match where it is used.
				c.bad(path+"."+k, "names are read in lower case; write %q", strings.ToLower(k))
			}
			c.set(m, k, c.value(path+"."+k, m[k], t.Elem(), r))
		}
		return m
	case reflect.Slice:
		if s, ok := v.(string); ok && isLeaf(t) {
			// A comma-separated list, as a variable gives one.
			return s
		}
		l, ok := v.([]any)
		if !ok {
			c.bad(path, "expected a list, got %s", kindOf(v))
			return dropped
		}
		for i := range l {
			if l[i] = c.value(fmt.Sprintf("%s[%d]", path, i), l[i], t.Elem(), r); l[i] == dropped {
				l[i] = nil
			}
		}
		return l
	case reflect.Interface:
		c.lowerKeys(path, v)
		return v
	case reflect.String:
		switch x := v.(type) {
		case string:
			return x
		case int:
			// Digits are digits; a float or a bool would not come back
			// as written (1.10 is "1.1", true is "1").
			return strconv.Itoa(x)
		}
		c.bad(path, "expected a string, got %s; write it in quotes", kindOf(v))
		return dropped
	case reflect.Bool:
		if b, ok := scalar(v).(bool); ok {
			return b
		}
		c.bad(path, "expected true or false, got %s", kindOf(v))
		return dropped
	case reflect.Int, reflect.Int64:
		return c.integer(path, scalar(v), r)
	case reflect.Float64:
		return c.float(path, scalar(v), r)
	}
	return v
}

// set puts a checked value under k, or removes k when it was refused.
func (c *treeCheck) set(m map[string]any, k string, v any) {
	if v == dropped {
		delete(m, k)
		return
	}
	m[k] = v
}

// scalar reads a string as YAML reads an unquoted value, so that "10" and
// 10 (and a variable's 10) are alike; anything else is returned as is.
func scalar(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	var out any
	if yaml.Unmarshal([]byte(s), &out) != nil {
		return v
	}
	switch out.(type) {
	case int, float64, bool, uint64:
		return out
	}
	return v
}

func (c *treeCheck) integer(path string, v any, r rules) any {
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case uint64:
		c.bad(path, "%d is out of range", x)
		return dropped
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || x != math.Trunc(x) {
			c.bad(path, "expected a whole number, got %v", x)
			return dropped
		}
		if x < math.MinInt64 || x >= math.MaxInt64 {
			c.bad(path, "%v is out of range", x)
			return dropped
		}
		n = int(x)
	default:
		c.bad(path, "expected a whole number, got %s", kindOf(v))
		return dropped
	}
	if !c.sign(path, float64(n), r) {
		return dropped
	}
	return n
}

func (c *treeCheck) float(path string, v any, r rules) any {
	var f float64
	switch x := v.(type) {
	case int:
		f = float64(x)
	case uint64:
		f = float64(x)
	case float64:
		f = x
	default:
		c.bad(path, "expected a number, got %s", kindOf(v))
		return dropped
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		c.bad(path, "expected a finite number, got %v", f)
		return dropped
	}
	if !c.sign(path, f, r) {
		return dropped
	}
	return f
}

func (c *treeCheck) duration(path string, v any, r rules) any {
	switch x := scalar(v).(type) {
	case int, float64, uint64:
		if reflect.ValueOf(x).IsZero() {
			if !c.sign(path, 0, r) {
				return dropped
			}
			return 0
		}
		// Decoded as is, 60 would be 60 nanoseconds.
		c.bad(path, "a duration needs a unit: %v is no duration (write %vs, %vms, …)", x, x, x)
		return dropped
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(x))
		if err != nil {
			c.bad(path, "expected a duration such as 30s or 250ms, got %q", x)
			return dropped
		}
		if !c.sign(path, float64(d), r) {
			return dropped
		}
		return strings.TrimSpace(x)
	}
	c.bad(path, "expected a duration such as 30s or 250ms, got %s", kindOf(v))
	return dropped
}

// sign applies the field's rules to a number and reports whether it
// passed.
func (c *treeCheck) sign(path string, f float64, r rules) bool {
	switch {
	case f < 0 && !r.signed:
		c.bad(path, "must not be negative")
	case f == 0 && r.unset:
		c.bad(path, "must not be 0 (leave it out for the default)")
	default:
		return true
	}
	return false
}

// lowerKeys reports keys written other than in lower case anywhere under
// v (route steering objects, whose weights name objectives).
func (c *treeCheck) lowerKeys(path string, v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if k != strings.ToLower(k) {
				c.bad(path+"."+k, "keys are read in lower case; write %q", strings.ToLower(k))
			}
			c.lowerKeys(path+"."+k, x[k])
		}
	case []any:
		for i, e := range x {
			c.lowerKeys(fmt.Sprintf("%s[%d]", path, i), e)
		}
	}
}

// kindOf names a YAML value's kind for a message.
func kindOf(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(x)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "nothing"
	}
	return fmt.Sprint(v)
}
