package promsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"

	"github.com/berth-dev/berth/internal/fleetsim"
	"github.com/berth-dev/berth/placement/embedded"
)

// BenchmarkSnapshotEmbedded measures one uncached fleet snapshot over the
// embedded stack scraping a simulated fleet with the shipped rules, and
// reports the PromQL round trips per snapshot (the same at every size).
func BenchmarkSnapshotEmbedded(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			spec, err := fleetsim.Generate(fleetsim.GenerateOptions{Servers: n, BuildServers: n / 10, Organizations: 5, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fleet, err := fleetsim.Start(ctx, spec, fleetsim.ListenConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer fleet.Close()
			dir := b.TempDir()
			sd := filepath.Join(dir, "fleet.json")
			if err := fleet.WriteFileSD(sd); err != nil {
				b.Fatal(err)
			}
			cfg := filepath.Join(dir, "prometheus.yml")
			if err := writeFile(cfg, fleetsim.ScrapeConfig("fleet", sd, benchInterval)); err != nil {
				b.Fatal(err)
			}
			e, err := embedded.New(embedded.Config{StoragePath: filepath.Join(dir, "data"), ConfigFile: cfg}, promslog.NewNopLogger(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			defer e.Stop()
			s, err := NewSnapshotter(e, SnapshotterOptions{}, promslog.NewNopLogger(), prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Minute)
			for {
				snap, err := s.Snapshot(ctx)
				if err == nil && len(snap.Servers) == n && len(snap.Servers["sim-0001"].Missing) == 0 {
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("fleet of %d never complete: %v", n, err)
				}
				time.Sleep(time.Second)
			}
			q0 := s.Queries()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Snapshot(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(s.Queries()-q0)/float64(b.N), "queries/op")
		})
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// benchInterval is the scrape and rule interval of the benchmark fleet;
// production's 15s, so the 2-core machine is not saturated by ingestion.
const benchInterval = 15 * time.Second
