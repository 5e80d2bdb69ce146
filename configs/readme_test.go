package configs

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// docKeys lists every config key in the README's notation: map entries as
// NAME (OBJECTIVE under normalize and transform), list elements as [],
// maps of values (weights, keywords, steering) as one key.
func docKeys(t reflect.Type, path string, out *[]string) {
	if isLeaf(t) || t.Kind() == reflect.Map && isLeaf(t.Elem()) {
		*out = append(*out, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			name := tagName(t.Field(i))
			if name == "" || name == "-" {
				continue
			}
			docKeys(t.Field(i).Type, strings.TrimPrefix(path+"."+name, "."), out)
		}
	case reflect.Map:
		placeholder := "NAME"
		if strings.HasSuffix(path, ".normalize") || strings.HasSuffix(path, ".transform") {
			placeholder = "OBJECTIVE"
		}
		docKeys(t.Elem(), path+"."+placeholder, out)
	case reflect.Slice:
		docKeys(t.Elem(), path+"[]", out)
	case reflect.Pointer:
		docKeys(t.Elem(), path, out)
	}
}

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestREADMEDocumentsEveryKey fails when a config key has no row in the
// README's configuration table, or a row names a key that does not exist.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	doc := readme(t)
	rows := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_\\[\\]A-Z0-9.]+)` \\|").FindAllStringSubmatch(doc, -1) {
		rows[m[1]] = true
	}
	var keys []string
	docKeys(reflect.TypeOf(Config{}), "", &keys)
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
		if !rows[k] {
			t.Errorf("README has no row for the config key %s", k)
		}
	}
	for r := range rows {
		if strings.ContainsAny(r, ".[") && !known[r] && (strings.HasPrefix(r, "server.") || strings.HasPrefix(r, "backends.") ||
			strings.HasPrefix(r, "models[") || strings.HasPrefix(r, "rewards.") || strings.HasPrefix(r, "cache.") ||
			strings.HasPrefix(r, "log.") || strings.HasPrefix(r, "onnx.") || strings.HasPrefix(r, "auth.") ||
			strings.HasPrefix(r, "preferences.") || strings.HasPrefix(r, "experiments[")) {
			t.Errorf("README documents %s, which is no config key", r)
		}
	}
}

// TestREADMEYAMLExamplesLoad: every YAML example of the README is a config
// that loads as written.
func TestREADMEYAMLExamplesLoad(t *testing.T) {
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(readme(t), -1)
	if len(blocks) == 0 {
		t.Fatal("no YAML examples found")
	}
	for i, b := range blocks {
		if _, err := Parse("README example", []byte(b[1])); err != nil {
			t.Errorf("YAML example %d does not load: %v\n%s", i+1, err, b[1])
		}
	}
}
