package configs

import (
	"cmp"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every variable that overrides a config key.
const EnvPrefix = "STEERGATE_"

// nonConfig are variables with the prefix that are not config keys: the
// download cache folder make fills, and the tests' own settings.
func nonConfig(name string) bool {
	return name == "STEERGATE_DOWNLOADS" || strings.HasPrefix(name, "STEERGATE_TEST_")
}

// applyEnv sets, in the raw YAML tree, every key that a STEERGATE_<PATH>
// variable names: the path upper-cased with dots and list indices as
// underscores (STEERGATE_SERVER_LISTEN, STEERGATE_BACKENDS_UP_API_KEY,
// STEERGATE_MODELS_0_BACKEND), whether or not the file has the key. A map
// entry (a backend, a reward) must be named in the file; list-valued keys
// take comma-separated values. A variable that names a section, or nothing,
// is an error naming it.
// It returns the key paths it set, each with its variable's name.
func applyEnv(file string, raw map[string]any, environ []string) (map[string]string, Errors) {
	var errs Errors
	set := map[string]string{}
	names := make([]string, 0)
	values := map[string]string{}
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || nonConfig(name) {
			continue
		}
		names = append(names, name)
		values[name] = value
	}
	sort.Strings(names)
	for _, name := range names {
		rest := strings.TrimPrefix(name, EnvPrefix)
		path, err := setEnv(raw, reflect.TypeOf(Config{}), rest, "", values[name])
		if err != nil {
			errs = append(errs, fmt.Sprintf("the environment variable %s %v (config file %s)", name, err, file))
			continue
		}
		set[path] = name
	}
	return set, errs
}

// setEnv walks t along the variable's remaining name, sets the leaf it
// reaches in node and returns the leaf's path.
func setEnv(node map[string]any, t reflect.Type, rest, path, value string) (string, error) {
	if t.Kind() != reflect.Struct {
		return "", fmt.Errorf("does not name a config key")
	}
	// The longest field name that starts rest wins, so that max_n does not
	// shadow max_n_something.
	type cand struct {
		name string
		ft   reflect.Type
	}
	var best *cand
	for i := range t.NumField() {
		f := t.Field(i)
		name := tagName(f)
		if name == "" || name == "-" {
			continue
		}
		up := strings.ToUpper(name)
		if rest == up || strings.HasPrefix(rest, up+"_") {
			if best == nil || len(name) > len(best.name) {
				best = &cand{name, f.Type}
			}
		}
	}
	if best == nil {
		return "", fmt.Errorf("does not name a config key")
	}
	key := best.name
	p := strings.TrimPrefix(path+"."+key, ".")
	after := strings.TrimPrefix(strings.TrimPrefix(rest, strings.ToUpper(key)), "_")
	ft := best.ft
	if isLeaf(ft) {
		if after != "" {
			return "", fmt.Errorf("does not name a config key (%s is a value, not a section)", p)
		}
		node[key] = leafValue(ft, value)
		return p, nil
	}
	if after == "" {
		return "", fmt.Errorf("would replace the whole %s section; set its keys instead (e.g. %s_...)", p, envName(p))
	}
	switch ft.Kind() {
	case reflect.Struct:
		child, err := section(node, key, p)
		if err != nil {
			return "", err
		}
		return setEnv(child, ft, after, p, value)
	case reflect.Map:
		entries, _ := node[key].(map[string]any)
		// The entry names of the file that start the rest, the longest
		// first: with backends up and up_max, UP_MAX_TOKENS is up_max's
		// tokens (no key) or up's max_tokens.
		var names []string
		for n := range entries {
			up := strings.ToUpper(n)
			if after == up || strings.HasPrefix(after, up+"_") {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			return "", fmt.Errorf("names no %s entry of the file (entries must be named in the file)", p)
		}
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
		sub := func(name string) string {
			return strings.TrimPrefix(strings.TrimPrefix(after, strings.ToUpper(name)), "_")
		}
		// Each reading is tried on a copy of its entry; one that fits more
		// than one (backends ref and ref_queue: REF_QUEUE_TIMEOUT) is
		// refused, not settled by a rule the operator cannot see.
		var first error
		var fits, paths []string
		for _, name := range names {
			scratch := map[string]any{name: deepCopy(entries[name])}
			path, err := setEntry(scratch, ft.Elem(), name, sub(name), p+"."+name, value)
			if err != nil {
				first = cmp.Or(first, err)
				continue
			}
			fits, paths = append(fits, name), append(paths, path)
		}
		switch len(fits) {
		case 0:
			return "", first
		case 1:
			return setEntry(entries, ft.Elem(), fits[0], sub(fits[0]), p+"."+fits[0], value)
		}
		return "", fmt.Errorf("is ambiguous: it names %s; rename an entry so that one name is not the start of another", strings.Join(paths, " and "))
	case reflect.Slice:
		list, _ := node[key].([]any)
		idx, sub, _ := strings.Cut(after, "_")
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= len(list) {
			return "", fmt.Errorf("names %s[%s], which the file does not have", p, idx)
		}
		if sub == "" {
			return "", fmt.Errorf("would replace the whole %s[%d] section; set its keys instead", p, i)
		}
		at := fmt.Sprintf("%s[%d]", p, i)
		child, ok := list[i].(map[string]any)
		switch {
		case list[i] == nil:
			child = map[string]any{}
			list[i] = child
		case !ok:
			return "", fmt.Errorf("sets a key in %s, which the file has as %s, not a mapping", at, kindOf(list[i]))
		}
		return setEnv(child, ft.Elem(), sub, at, value)
	}
	return "", fmt.Errorf("does not name a config key")
}

// setEntry sets what sub names in the map entry name (at path ep).
func setEntry(entries map[string]any, et reflect.Type, name, sub, ep, value string) (string, error) {
	if isLeaf(et) {
		if sub != "" {
			return "", fmt.Errorf("does not name a config key")
		}
		entries[name] = leafValue(et, value)
		return ep, nil
	}
	if sub == "" {
		return "", fmt.Errorf("would replace the whole %s section; set its keys instead", ep)
	}
	child, err := section(entries, name, ep)
	if err != nil {
		return "", err
	}
	return setEnv(child, et, sub, ep, value)
}

// deepCopy copies a YAML tree of maps and lists.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, x := range v {
			c[k] = deepCopy(x)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, x := range v {
			c[i] = deepCopy(x)
		}
		return c
	}
	return v
}

// envName is the variable that names a key path: models[0].steering is
// STEERGATE_MODELS_0_STEERING.
func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "[", "_", "]", "").Replace(path))
}

// section is the mapping node[key], made when the file lacks it; a value
// of another kind there is the file's mistake, which the variable must
// not hide.
func section(node map[string]any, key, path string) (map[string]any, error) {
	switch v := node[key].(type) {
	case map[string]any:
		return v, nil
	case nil:
		m := map[string]any{}
		node[key] = m
		return m, nil
	default:
		return nil, fmt.Errorf("sets a key in %s, which the file has as %s, not a mapping", path, kindOf(v))
	}
}

// isLeaf types hold one value: scalars, durations, lists of scalars
// (comma-separated in a variable).
func isLeaf(t reflect.Type) bool {
	if t == reflect.TypeOf(time.Duration(0)) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return false
	case reflect.Slice:
		return isLeaf(t.Elem()) && t.Elem().Kind() != reflect.Slice
	case reflect.Pointer:
		return isLeaf(t.Elem())
	}
	return true
}

// leafValue is a variable's value for a key of type t: a YAML scalar for
// keys of any type (route steering parameters), else the text, which the
// decoder converts.
func leafValue(t reflect.Type, value string) any {
	if t.Kind() == reflect.Interface && !octalLike(strings.TrimSpace(value)) { // 010 would be 8: the text is refused as no number
		var v any
		if yaml.Unmarshal([]byte(value), &v) == nil {
			return v
		}
	}
	return value
}

// environ is the process environment; tests replace it.
var environ = os.Environ
