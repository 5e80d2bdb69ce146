package configs

import (
	"net/url"
	"reflect"
	"slices"
	"time"

	"gopkg.in/yaml.v3"
)

// Effective renders cfg as YAML with every default filled in and secrets
// redacted; with the secrets put back, it loads as the same config.
func Effective(cfg *Config) ([]byte, error) {
	tree := plain(reflect.ValueOf(*cfg)).(map[string]any)
	// A reward shows the sections its type reads, not every type's
	// defaults, which it would then refuse (otherTypesSections).
	rewards, _ := tree["rewards"].(map[string]any)
	for _, r := range rewards {
		r := r.(map[string]any)
		typ, _ := r["type"].(string)
		for sec, types := range rewardSections {
			if !slices.Contains(types, typ) {
				delete(r, sec)
			}
		}
	}
	return yaml.Marshal(tree)
}

func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			fv := v.Field(i)
			// A zero where zero means "not set" (a default the type of the
			// entry does not fill), and a pointer never set, are left out:
			// the output is a config that loads again.
			if tagName(f) == "-" || f.Tag.Get("unset") == "true" && fv.IsZero() || fv.Kind() == reflect.Pointer && fv.IsNil() {
				continue
			}
			val := plain(v.Field(i))
			if f.Tag.Get("secret") == "true" && v.Field(i).String() != "" {
				val = "REDACTED"
			}
			out[tagName(f)] = val
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[k.String()] = plain(v.MapIndex(k))
		}
		return out
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = plain(v.Index(i))
		}
		return out
	case reflect.Int64:
		if v.Type() == reflect.TypeOf(time.Duration(0)) {
			return time.Duration(v.Int()).String()
		}
	case reflect.String:
		// A URL's password (https://user:pass@host) is a secret too, shown
		// as the config's errors show it.
		if u, err := url.Parse(v.String()); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				return hidePassword(v.String())
			}
		}
	}
	return v.Interface()
}
