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
// (a quoted "10" for a number becomes 10, a number where text goes its
// text as written, a variable's list its items), so that the decode that
// follows converts nothing.
type treeCheck struct {
	file  string
	env   map[string]string // key path → the variable that set it
	texts map[string]string // key path → a number's text as written (numberTexts)
	errs  Errors
	paths map[string]bool // the keys errs are about
	// misplaced are sections of a type that does not read them, for the
	// validation (Parse) to report: a decode still takes them.
	misplaced Errors
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
	c.errs = append(c.errs, c.reword(fmt.Sprintf("%s:%s: %s", c.file, path, msg)))
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

// reword says a "file:key: message" line about a key a variable set as
// that variable's.
func (c *treeCheck) reword(line string) string {
	key, msg, ok := strings.Cut(strings.TrimPrefix(line, c.file+":"), ": ")
	if !ok {
		return line
	}
	for path, v := range c.env {
		if key == path || strings.HasPrefix(key, path+"[") {
			return fmt.Sprintf("the environment variable %s sets %s: %s (config file %s)", v, key, msg, c.file)
		}
	}
	return line
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
	if m, ok := v.(map[any]any); ok {
		// YAML gives such a mapping when a key is no string (1:, true:).
		var keys []string
		for k := range m {
			if _, isString := k.(string); !isString {
				keys = append(keys, fmt.Sprint(k))
			}
		}
		slices.Sort(keys)
		c.bad(path, "has keys that are no strings (%s): write them in quotes", strings.Join(keys, ", "))
		return dropped
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
			if e, isMap := m[k].(map[string]any); (m[k] == nil || isMap && len(e) == 0 && t.Elem().Kind() == reflect.Struct) && t.Elem().Kind() != reflect.Interface {
				// The decode would drop an entry with nothing in it
				// (a backend `up:`, a weight `verbosity:`) without a word.
				c.bad(path+"."+k, "is empty")
				delete(m, k)
				continue
			}
			c.set(m, k, c.value(path+"."+k, m[k], t.Elem(), r))
		}
		return m
	case reflect.Slice:
		if s, ok := v.(string); ok && isLeaf(t) {
			if _, set := c.env[path]; !set {
				// In a file a list is written as one: split on commas,
				// a string would break a pattern such as x{1,3}.
				c.bad(path, "expected a list, got %s; write [%q]", kindOf(v), s)
				return dropped
			}
			// A variable gives a list comma-separated.
			var items []any
			for item := range strings.SplitSeq(s, ",") {
				items = append(items, strings.TrimSpace(item))
			}
			v = items
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
		switch v.(type) {
		case string:
			return v
		case int, uint64, float64:
			// A number where text goes is its text as written: 1.10 stays
			// 1.10, 0x1F stays 0x1F.
			if text, ok := c.texts[path]; ok {
				return text
			}
		}
		c.bad(path, "expected a string, got %s; write it in quotes", kindOf(v))
		return dropped
	case reflect.Bool:
		if b, ok := scalar(v).(bool); ok {
			return b
		}
		c.bad(path, "expected true or false, got %s", kindOf(v))
		return dropped
	case reflect.Int, reflect.Int64, reflect.Float64:
		// As written: the file's text of a number, or a string's (a quoted
		// number, a variable's).
		text := c.texts[path]
		if s, ok := v.(string); ok {
			text = strings.TrimSpace(s)
		}
		if octalLike(text) {
			// YAML reads 010 as octal: 8.
			c.bad(path, "%s would be read as an octal number; write it without the leading 0, or as 0o…", text)
			return dropped
		}
		if t.Kind() == reflect.Float64 {
			return c.float(path, scalar(v), r)
		}
		return c.integer(path, scalar(v), r)
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

// numberTexts maps the key path of every number written in doc (a plain
// int or float scalar) to its text, for the keys that hold text.
func numberTexts(doc *yaml.Node) map[string]string {
	texts := map[string]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.AliasNode:
			walk(n.Alias, path)
		case yaml.MappingNode:
			// Merged mappings (<<: *base) first: the keys written here
			// win over theirs, as in the decode.
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].ShortTag() == "!!merge" {
					from := n.Content[i+1]
					if from.Kind == yaml.SequenceNode {
						for _, m := range from.Content {
							walk(m, path)
						}
					} else {
						walk(from, path)
					}
				}
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].ShortTag() != "!!merge" {
					walk(n.Content[i+1], strings.TrimPrefix(path+"."+n.Content[i].Value, "."))
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.ScalarNode:
			if n.Style == 0 && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
				texts[path] = n.Value
			}
		}
	}
	walk(doc, "")
	return texts
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

// octalLike reports whether a number's text has a leading 0 before
// another digit (010), which YAML reads as octal.
func octalLike(text string) bool {
	text = strings.TrimLeft(text, "+-")
	return len(text) > 1 && text[0] == '0' && '0' <= text[1] && text[1] <= '9'
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
// v (route steering objects, whose weights name objectives), and numbers
// written with a leading 0.
func (c *treeCheck) lowerKeys(path string, v any) {
	if octalLike(c.texts[path]) {
		c.bad(path, "%s would be read as an octal number; write it without the leading 0, or as 0o…", c.texts[path])
	}
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
