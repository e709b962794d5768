// Package deploy holds the Kubernetes manifests and the Dockerfile; this
// test keeps the Sluice configs embedded in the manifests' ConfigMaps valid.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	_ "github.com/sluicehq/sluice/components/all"
	"github.com/sluicehq/sluice/runtime"
)

type manifest struct {
	Kind     string                `yaml:"kind"`
	Metadata struct{ Name string } `yaml:"metadata"`
	Data     map[string]string     `yaml:"data"`
}

func TestConfigMapsValidate(t *testing.T) {
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
		for _, m := range decodeManifests(t, f, src) {
			if m.Kind != "ConfigMap" {
				continue
			}
			// Mount the ConfigMap as Kubernetes does: every key a file in
			// one directory.
			dir := t.TempDir()
			for k, v := range m.Data {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for k, v := range m.Data {
				if !strings.HasSuffix(k, ".hcl") {
					continue
				}
				// The pod spec sets the environment (NODE_NAME, ...);
				// here every variable reads as "x".
				podEnv := func(string) (string, bool) { return "x", true }
				if err := runtime.Validate(filepath.Join(dir, k), []byte(v), podEnv); err != nil {
					t.Errorf("%s: ConfigMap %s key %s does not validate:\n%v", f, m.Metadata.Name, k, err)
				}
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("no Sluice config found in the manifests")
	}
}

// decodeManifests decodes every YAML document of file's content src.
func decodeManifests(t *testing.T, file string, src []byte) []manifest {
	t.Helper()
	var ms []manifest
	dec := yaml.NewDecoder(bytes.NewReader(src))
	for {
		var m manifest
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return ms
		} else if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		ms = append(ms, m)
	}
}
