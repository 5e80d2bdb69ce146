// Package arch holds tests about the repository as a whole: imports point
// down the layers, and no test reads outside the module.
package arch

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/steergate/steergate/"

// layers ranks every package: a package may import only packages of a
// lower rank. A new package must be placed here, which is the point: its
// place in the layers is a decision, not an accident.
var layers = map[string]int{
	// Leaves: import nothing of ours.
	"fault": 0, "metrics": 0, "configs": 0, "rm/tokenizer": 0, "cache/cachetest": 0, "ui": 0, "test/nodetest": 0,
	// The cache and the backend contract.
	"cache": 1, "backend": 1,
	// The OpenAI wire format, over the backend types.
	"wire": 2,
	// Backend adapters; reward interfaces and combinators.
	"backend/ollama": 3, "backend/openai": 3, "backend/reference": 3, "rm": 3,
	// Reward implementations and the backends' conformance suite.
	"rm/rules": 4, "rm/judge": 4, "rm/remote": 4, "rm/onnx": 4, "rm/rmtest": 4, "backend/backendtest": 4, "backend/ollama/ollamatest": 4,
	"backend/ollama/ollamatest/gen": 5,
	"rm/factory":                    5, "rm/rmtest/gen": 5,
	// Steering, then who asks and what is being tried.
	"steering": 6, "prefs": 7, "experiment": 7,
	// Faces: HTTP (with the dashboard), the evaluation harness.
	"gateway": 8, "eval": 8,
	// Programs.
	"cmd/steergate": 9, "bench": 9,
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		if strings.HasPrefix(name, "test/") {
			continue
		}
		rank, ok := layers[name]
		if !ok {
			t.Errorf("package %s has no layer: add it to layers", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if r, ok := layers[dep]; ok && r >= rank {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", name, rank, dep, r)
			}
		}
	}
}

// TestTestsStayInsideTheModule fails when a test names a path that
// leaves the repository: a user's clone has nothing beside it.
func TestTestsStayInsideTheModule(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		check := func(s string) {
			if !strings.HasPrefix(s, "..") {
				return
			}
			abs := filepath.Clean(filepath.Join(dir, s))
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s names %q, which is outside the repository", strings.TrimPrefix(path, root+"/"), s)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); n.Kind == token.STRING && err == nil {
					check(s)
				}
			case *ast.CallExpr:
				// filepath.Join("..", "..", "x", name): its leading literal parts.
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "Join" {
					return true
				}
				var parts []string
				for _, a := range n.Args {
					lit, ok := a.(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						break
					}
					s, _ := strconv.Unquote(lit.Value)
					parts = append(parts, s)
				}
				if len(parts) > 0 {
					check(filepath.Join(parts...))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("root %s is not the module: %v", root, err)
	}
}
