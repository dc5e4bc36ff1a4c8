package fleetsim

import (
	"fmt"
	"math/rand/v2"
)

// GenerateOptions shapes a generated fleet.
type GenerateOptions struct {
	Servers       int // total, build servers included
	BuildServers  int
	Organizations int // 0: no organization label
	Seed          uint64
}

const (
	gib = 1 << 30
	gb  = 1e9
)

// Generate builds a plausible fleet: app servers of typical VPS sizes with a
// few managed applications (some without limits), an infra container each,
// and build servers running Coolify helper containers. The same options
// always give the same spec.
func Generate(o GenerateOptions) (Spec, error) {
	switch {
	case o.Servers <= 0:
		return Spec{}, fmt.Errorf("servers: must be > 0, got %d", o.Servers)
	case o.BuildServers < 0 || o.BuildServers > o.Servers:
		return Spec{}, fmt.Errorf("build_servers: must be within 0..servers, got %d", o.BuildServers)
	case o.Organizations < 0:
		return Spec{}, fmt.Errorf("organizations: must be >= 0, got %d", o.Organizations)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6265727468))
	spec := Spec{Seed: o.Seed}
	app := 0
	for i := range o.Servers {
		role := "app"
		if i >= o.Servers-o.BuildServers {
			role = "build"
		}
		org := ""
		if o.Organizations > 0 {
			org = fmt.Sprintf("org-%d", i%o.Organizations+1)
		}
		cores := []int{2, 4, 8, 16}[rng.IntN(4)]
		mem := float64(cores) * float64([]int{2, 4}[rng.IntN(2)]) * gib
		disk := []float64{40, 80, 160, 320}[rng.IntN(4)] * gb
		s := ServerSpec{
			Name:            fmt.Sprintf("sim-%04d", i+1),
			Role:            role,
			Organization:    org,
			Cores:           cores,
			MemoryBytes:     mem,
			MemoryUsedBytes: mem * (0.15 + 0.55*rng.Float64()),
			DiskBytes:       disk,
			DiskUsedBytes:   disk * (0.15 + 0.6*rng.Float64()),
			CPUBusy:         0.05 + 0.6*rng.Float64(),
			Connections:     10 + rng.IntN(400),
		}
		s.Containers = append(s.Containers, ContainerSpec{
			Name: "coolify-proxy", Image: "traefik:v3.1", Role: "infra",
			MemoryWorkingSetBytes: 40 << 20, CPUUsageCores: 0.01,
		})
		if role == "build" {
			for b := range rng.IntN(3) {
				s.Containers = append(s.Containers, ContainerSpec{
					Name:  randomID(rng, 24),
					Image: "ghcr.io/coollabsio/coolify-helper:1.0.8", Role: "build",
					CPUUsageCores: 0.5 + float64(b), MemoryWorkingSetBytes: float64(512+rng.IntN(1024)) * (1 << 20),
				})
			}
		} else {
			// Keep declared allocations (limits, and the policy's default
			// request of 0.5 CPU / 512 MiB for unlimited containers) under
			// half of the server, as a healthy fleet has them: a simulated
			// fleet that is full by allocation makes every demo answer "no".
			cpuBudget, memBudget := 0.5*float64(cores), 0.5*mem
			for range 1 + rng.IntN(6) {
				app++
				c := ContainerSpec{
					Name:          fmt.Sprintf("app%d-%s", app, randomID(rng, 6)),
					Image:         fmt.Sprintf("registry.local/app%d:latest", app),
					ApplicationID: fmt.Sprint(app),
					ResourceType:  "application",
					Project:       fmt.Sprintf("project-%d", app%5+1),
					Environment:   "production",
					PullRequest:   "0",
					Managed:       true,
					Role:          "app",
				}
				if rng.IntN(3) > 0 { // a third run without limits, as many do
					c.CPULimitCores = []float64{0.5, 1, 2}[rng.IntN(3)]
					c.MemoryLimitBytes = float64([]int{256, 512, 1024, 2048}[rng.IntN(4)]) * (1 << 20)
				}
				cpuCharge, memCharge := c.CPULimitCores, c.MemoryLimitBytes
				if cpuCharge == 0 {
					cpuCharge, memCharge = 0.5, 512<<20
				}
				if cpuCharge > cpuBudget || memCharge > memBudget {
					app--
					break
				}
				cpuBudget, memBudget = cpuBudget-cpuCharge, memBudget-memCharge
				c.CPUUsageCores = 0.02 + 0.3*rng.Float64()
				c.MemoryWorkingSetBytes = float64(64+rng.IntN(400)) * (1 << 20)
				s.Containers = append(s.Containers, c)
			}
		}
		spec.Servers = append(spec.Servers, s)
	}
	return spec, spec.Validate()
}

func randomID(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}
