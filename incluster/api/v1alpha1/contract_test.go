package v1alpha1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// root is the module's root, from this package's folder.
const root = "../../.."

// homes are the files that define the shared contract: the API package and the installed
// objects' names.
var homes = []string{"incluster/api/v1alpha1", "manifests/names.go"}

// coincidences are contract values that other strings share by design, not by copy.
var coincidences = map[string]string{
	"kubectl-mcsa": "the plugin's own name, which is also the managed-by label's value",
	"ca.crt":       "the Kubernetes convention for a CA bundle's key, also in TLS secrets",
}

// respelled are prefixes that only the contract's homes may spell: the API group's keys and the
// mount path.
var respelled = []string{"multicluster.admiralty.io/", "/var/run/secrets/admiralty.io"}

// TestContractHasOneHome fails when product code (incluster/, plugin/, manifests/; tests
// excluded) spells again a string constant of the contract instead of naming it: every
// distinctive string constant of the homes (one with '.', '/' or '-', so not plain words such as
// "token") and every string starting with the group's key prefix or the mount path.
func TestContractHasOneHome(t *testing.T) {
	values := map[string]string{} // value -> where it is defined
	for _, home := range homes {
		walkGo(t, filepath.Join(root, home), false, func(f *ast.File, fset *token.FileSet) {
			for _, decl := range f.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					for _, v := range spec.(*ast.ValueSpec).Values {
						if s, ok := stringLit(v); ok && len(s) >= 6 && strings.ContainsAny(s, "./-") {
							values[s] = fset.Position(v.Pos()).String()
						}
					}
				}
			}
		})
	}
	if len(values) < 10 {
		t.Fatalf("found only %d contract strings in %v: has the API moved?", len(values), homes)
	}
	for _, dir := range []string{"incluster", "plugin", "manifests"} {
		walkGo(t, filepath.Join(root, dir), true, func(f *ast.File, fset *token.FileSet) {
			ast.Inspect(f, func(n ast.Node) bool {
				s, ok := stringLit(n)
				if !ok {
					return true
				}
				if where, ok := values[s]; ok && coincidences[s] == "" {
					t.Errorf("%s: %q is defined at %s: use that constant", fset.Position(n.Pos()), s, where)
				}
				for _, p := range respelled {
					if strings.HasPrefix(s, p) {
						t.Errorf("%s: %q spells %q: use the constant of incluster/api/v1alpha1", fset.Position(n.Pos()), s, p)
					}
				}
				return true
			})
		})
	}
}

// walkGo parses the Go files under dir, skipping tests and, with skipHomes, the homes.
func walkGo(t *testing.T, dir string, skipHomes bool, fn func(*ast.File, *token.FileSet)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if skipHomes {
			for _, h := range homes {
				if rel == h {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		fn(f, fset)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func stringLit(n ast.Node) (string, bool) {
	lit, ok := n.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
