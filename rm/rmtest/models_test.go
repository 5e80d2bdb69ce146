package rmtest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The committed files are exactly what the generator writes.
func TestCommittedFilesAreGenerated(t *testing.T) {
	for name, want := range Files() {
		got, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatalf("%s: %v (run go run ./rm/rmtest/gen)", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generator's output: run go run ./rm/rmtest/gen", name)
		}
	}
}
