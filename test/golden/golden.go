// Package golden compares what a test produced with a file in testdata,
// and rewrites the file when the tests run with -update.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files from what the code produces now")

// Check fails t when got differs from the golden file path; with -update it
// writes got there instead. Values other than []byte are written as
// indented JSON.
func Check(t *testing.T, path string, got any) {
	t.Helper()
	b, ok := got.([]byte)
	if !ok {
		var err error
		if b, err = json.MarshalIndent(got, "", "  "); err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
	} else if json.Valid(b) {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			b = append(buf.Bytes(), '\n')
		}
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the tests with -update to write it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from what the code produces:\n--- got\n%s\n--- want\n%s\n(run with -update if the change is intended)", path, b, want)
	}
}
