package containers

import (
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"

	"github.com/berth-dev/berth/exporter"
)

func TestRegisterFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string // "" = builds
	}{
		{[]string{"--collector.containers.docker-host=unix:///nonexistent.sock"}, ""},
		{[]string{"--collector.containers.label-map=team=team", "--collector.containers.build-image-pattern=my/helper:.*"}, ""},
		{[]string{"--collector.containers.label-map=a=bad-name"}, "--collector.containers.label-map"},
		{[]string{"--collector.containers.build-image-pattern=(("}, "--collector.containers.build-image-pattern"},
		{[]string{"--collector.containers.docker-host=ssh://host"}, "--collector.containers.docker-host"},
		{[]string{"--collector.containers.relist-interval=0s"}, "--collector.containers.relist-interval"},
	}
	for _, tt := range tests {
		app := kingpin.New("test", "")
		reg := exporter.NewRegistry(app)
		Register(reg)
		if _, err := app.Parse(tt.args); err != nil {
			t.Fatalf("parsing %v: %v", tt.args, err)
		}
		collectors, err := reg.Build(testLogger(t))
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%v: Build: %v", tt.args, err)
				continue
			}
			c, ok := collectors["containers"].(*Collector)
			if !ok {
				t.Errorf("%v: containers collector not built (enabled by default)", tt.args)
				continue
			}
			c.Close()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: Build error %v, want one naming %s", tt.args, err, tt.wantErr)
		}
	}
}
