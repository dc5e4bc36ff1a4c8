package dashboards

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestProvisioningFiles checks the example provisioning files have the
// shape Grafana expects and point where the documentation says.
func TestProvisioningFiles(t *testing.T) {
	var providers struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Folder  string `yaml:"folder"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "provisioning/dashboards/berth.yml", &providers)
	if providers.APIVersion != 1 || len(providers.Providers) != 1 {
		t.Fatalf("dashboard provider file: want apiVersion 1 and one provider, got %+v", providers)
	}
	p := providers.Providers[0]
	if p.Type != "file" || p.Options.Path == "" || p.Name == "" {
		t.Errorf("dashboard provider: want a named file provider with a path, got %+v", p)
	}

	var datasources struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string `yaml:"name"`
			UID       string `yaml:"uid"`
			Type      string `yaml:"type"`
			URL       string `yaml:"url"`
			IsDefault bool   `yaml:"isDefault"`
		} `yaml:"datasources"`
	}
	readYAML(t, "provisioning/datasources/berth.yml", &datasources)
	if datasources.APIVersion != 1 {
		t.Errorf("datasource file: apiVersion %d, want 1", datasources.APIVersion)
	}
	defaults, embedded := 0, 0
	for _, ds := range datasources.Datasources {
		if ds.Type != "prometheus" || ds.Name == "" || ds.UID == "" || !strings.HasPrefix(ds.URL, "http") {
			t.Errorf("datasource %+v: want a named Prometheus datasource with a uid and an http URL", ds)
		}
		if ds.IsDefault {
			defaults++
		}
		if strings.HasSuffix(ds.URL, ":9831/prometheus") {
			embedded++
		}
	}
	if defaults != 1 {
		t.Errorf("%d default datasources, want exactly 1", defaults)
	}
	if embedded != 1 {
		t.Errorf("want one datasource on berth-placement's embedded endpoint (:9831/prometheus), got %d", embedded)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
