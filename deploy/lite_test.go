package deploy

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// liteComponentNames are the components cmd/sluice-lite imports, read from
// its main.go and the registry (components/all is imported by this
// package's tests).
func liteComponentNames(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "cmd", "sluice-lite", "main.go"), nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]bool{}
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		pkgs[p] = true
	}
	names := map[string]bool{}
	for _, r := range pipeline.Registrations() {
		if d := runtime.Describe(r); pkgs[d.Package] {
			names[d.Name] = true
		}
	}
	if !names["statsd_receiver"] || !names["metrics_sink"] {
		t.Fatalf("the lite components read from cmd/sluice-lite are %v", names)
	}
	return names
}

// The manifests that run the lite image (the sidecar) configure only
// components the lite distribution has: sluice-lite would refuse any
// other block at start.
func TestLiteManifestsUseLiteComponents(t *testing.T) {
	lite := liteComponentNames(t)
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(src, []byte("image: ghcr.io/sluicehq/sluice:lite")) {
			continue
		}
		for _, m := range decodeManifests(t, f, src) {
			for k, v := range m.Data {
				if !strings.HasSuffix(k, ".hcl") {
					continue
				}
				file, diags := hclsyntax.ParseConfig([]byte(v), k, hcl.InitialPos)
				if diags.HasErrors() {
					t.Fatalf("%s %s: %v", f, k, diags)
				}
				for _, b := range file.Body.(*hclsyntax.Body).Blocks {
					if !lite[b.Type] {
						t.Errorf("%s: %s has a %s block, which the lite distribution lacks", f, k, b.Type)
					}
					checked++
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no manifest runs the lite image with a Sluice config")
	}
}
