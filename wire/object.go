package wire

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/steergate/steergate/fault"
)

// Object splits a JSON object (a steering object, its weights, its cache;
// prefix names it in errors) into its members, refusing duplicate keys
// (also those that differ only in letter case, which encoding/json would
// match to one field). It scans rather than decodes: the values are
// decoded once, by what reads them.
func Object(raw json.RawMessage, prefix string) (map[string]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fault.Invalid(prefix, "%s must be an object", prefix)
	}
	if !Valid(raw) {
		return nil, fault.Invalid(prefix, "invalid %s: not valid JSON", prefix)
	}
	m := map[string]json.RawMessage{}
	seen := map[string]string{}
	err := EachMember(raw, func(mb Member) error {
		name, err := mb.Name() // escapes: the key is what they spell
		if err != nil {
			return fault.Invalid(prefix, "invalid %s: %v", prefix, err)
		}
		key := string(name)
		low := strings.ToLower(key)
		if prev, dup := seen[low]; dup {
			return fault.Invalid(prefix+"."+fault.Clip(key, 64), "invalid %s: key %q repeats %q", prefix, fault.Clip(key, 64), fault.Clip(prev, 64))
		}
		seen[low] = key
		m[key] = mb.Value
		return nil
	})
	switch {
	case err == nil:
		return m, nil
	case fault.Param(err) != "":
		return nil, err // a key's, named already
	}
	return nil, fault.Invalid(prefix, "invalid %s: %v", prefix, err) // the scan's own
}

// DropNulls removes the members given as null: for a steering object's
// parameters, null is not given, so that what lies beneath (a route's
// value, else the default) holds.
func DropNulls(m map[string]json.RawMessage) {
	for key, v := range m {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(m, key)
		}
	}
}

// MergeObjects lays over on base: objects merge key by key, anything else
// replaces.
func MergeObjects(base, over json.RawMessage) json.RawMessage {
	var b, o map[string]json.RawMessage
	if json.Unmarshal(base, &b) != nil || json.Unmarshal(over, &o) != nil || b == nil || o == nil {
		return over
	}
	for k, v := range o {
		if old, ok := b[k]; ok {
			v = MergeObjects(old, v)
		}
		b[k] = v
	}
	out, _ := json.Marshal(b)
	return out
}
