package configs

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// leaf is one key of a config: its path, the variable that overrides it,
// a value to set and how that value reads back.
type leaf struct {
	path, env string
	typ       reflect.Type
}

// walk lists every leaf key of v's type, with the map entries and list
// elements v has, and every section (struct, map, list) variable.
func walk(v reflect.Value, path, env string, leaves *[]leaf, sections *[]string) {
	t := v.Type()
	if isLeaf(t) {
		*leaves = append(*leaves, leaf{path: path, env: env, typ: t})
		return
	}
	if env != EnvPrefix[:len(EnvPrefix)-1] {
		*sections = append(*sections, env)
	}
	join := func(p, k string) string { return strings.TrimPrefix(p+"."+k, ".") }
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			name := tagName(t.Field(i))
			if name == "-" || name == "" {
				continue
			}
			walk(v.Field(i), join(path, name), env+"_"+strings.ToUpper(name), leaves, sections)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walk(v.MapIndex(k), join(path, k.String()), env+"_"+strings.ToUpper(k.String()), leaves, sections)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fmt.Sprintf("%s_%d", env, i), leaves, sections)
		}
	}
}

// valueFor returns a text to set a key of type t to, and what it decodes
// to.
func valueFor(t reflect.Type) (string, any) {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "3s", 3 * time.Second
	case t.Kind() == reflect.Pointer:
		s, v := valueFor(t.Elem())
		return s, v
	case t.Kind() == reflect.String:
		return "from-env", "from-env"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "7", int64(7)
	case t.Kind() == reflect.Float64:
		return "0.25", 0.25
	case t.Kind() == reflect.Bool:
		return "true", true
	case t.Kind() == reflect.Slice:
		return "a,b", []string{"a", "b"}
	case t.Kind() == reflect.Interface:
		return "9", 9
	}
	return "", nil
}

// at reads the value at a dotted path (with [i] and map keys) of cfg.
func at(cfg *Config, path string) reflect.Value {
	v := reflect.ValueOf(*cfg)
	for _, part := range strings.Split(path, ".") {
		name, idx, hasIdx := strings.Cut(part, "[")
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if tagName(v.Type().Field(i)) == name {
					v = v.Field(i)
					break
				}
			}
		case reflect.Map:
			v = v.MapIndex(reflect.ValueOf(name))
		}
		if hasIdx {
			var i int
			fmt.Sscanf(idx, "%d]", &i)
			v = v.Index(i)
		}
		for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
	}
	return v
}

func plainOf(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Int, reflect.Int64:
		if v.Type() == reflect.TypeOf(time.Duration(0)) {
			return time.Duration(v.Int())
		}
		return v.Int()
	case reflect.Slice:
		out := make([]string, v.Len())
		for i := range out {
			out[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return out
	}
	return v.Interface()
}

// Every key of the config tree can be set by its STEERGATE_ variable,
// whether or not the file has it; every variable naming a section, at any
// depth, is refused by name.
func TestEveryKeyHasAnEnvironmentVariable(t *testing.T) {
	file := "testdata/good/every.yaml"
	data := mustRead(t, file)
	base, err := decode(file, data)
	if err != nil {
		t.Fatal(err)
	}
	var leaves []leaf
	var sections []string
	walk(reflect.ValueOf(*base), "", "STEERGATE", &leaves, &sections)
	t.Logf("%d keys, %d sections", len(leaves), len(sections))
	if len(leaves) < 150 {
		t.Fatalf("only %d leaves", len(leaves))
	}
	for _, l := range leaves {
		value, want := valueFor(l.typ)
		if l.path == "models[0].steering.strategy" || l.path == "models[0].steering.n" {
			value, want = "9", 9
		}
		environ = func() []string { return []string{l.env + "=" + value} }
		cfg, err := decode(file, data)
		if err != nil {
			t.Errorf("%s=%s: %v", l.env, value, err)
			continue
		}
		got := plainOf(at(cfg, l.path))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s=%s: %s is %v, want %v", l.env, value, l.path, got, want)
		}
	}
	for _, s := range sections {
		environ = func() []string { return []string{s + "=x"} }
		if _, err := decode(file, data); err == nil || !strings.Contains(err.Error(), "would replace the whole") {
			t.Errorf("%s=x: %v", s, err)
		}
	}
	for _, bad := range []string{"STEERGATE_SERVER_LISTN", "STEERGATE_BACKENDS_NOPE_URL", "STEERGATE_MODELS_5_NAME", "STEERGATE_SERVER_LISTEN_X"} {
		environ = func() []string { return []string{bad + "=x"} }
		if _, err := decode(file, data); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	environ = func() []string { return []string{"STEERGATE_TEST_WHATEVER=1", "STEERGATE_DOWNLOADS=/tmp"} }
	if _, err := decode(file, data); err != nil {
		t.Errorf("variables that are not config keys: %v", err)
	}
	environ = realEnviron
}

var realEnviron = environ
