package promsource

import (
	"github.com/berth-dev/berth/placement/build"

	"context"
	"fmt"
	"math"
	"strconv"
	"time"
)

// DefaultBuildStartSlack is how long before a build's recorded start its
// container may have started (the deployer reports the start after
// Coolify has launched the helper).
const DefaultBuildStartSlack = time.Minute

// BuildHistory implements build.History over PromQL. Build
// containers carry no application label (docs/recording-rules.md,
// "Builds"), so a build is found by where and when it ran: the build
// containers (role="build") of its server that started between its
// recorded start (less a slack) and its end. One instant query per build,
// evaluated at the build's end, returns the heaviest such container's peak
// working set and CPU time, and the server's CPU count.
type BuildHistory struct {
	querier    Querier
	timeout    time.Duration
	startSlack time.Duration
}

var _ build.History = (*BuildHistory)(nil)

// NewBuildHistory returns a BuildHistory over q. timeout bounds each
// query (0: 10s); startSlack is DefaultBuildStartSlack when 0.
func NewBuildHistory(q Querier, timeout, startSlack time.Duration) *BuildHistory {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if startSlack <= 0 {
		startSlack = DefaultBuildStartSlack
	}
	return &BuildHistory{querier: q, timeout: timeout, startSlack: startSlack}
}

// BuildUsageQuery is the PromQL that BuildUsage evaluates at b.EndedAt.
func (h *BuildHistory) BuildUsageQuery(b build.Finished) string {
	window := int64(math.Ceil((b.EndedAt.Sub(b.StartedAt) + h.startSlack).Seconds()))
	w := strconv.FormatInt(max(window, 1), 10) + "s"
	from := float64(b.StartedAt.Add(-h.startSlack).UnixMilli()) / 1000
	to := float64(b.EndedAt.UnixMilli()) / 1000
	server := strconv.Quote(b.Server)
	// The containers of this build: build containers of the server that
	// started within the build's window.
	sel := fmt.Sprintf(`((last_over_time(container_start_time_seconds{role="build"}[%[1]s]) >= %[2]s <= %[3]s)
      and on (instance) last_over_time(berth_server_info{server=%[4]s}[%[1]s]))`,
		w, strconv.FormatFloat(from, 'f', 3, 64), strconv.FormatFloat(to, 'f', 3, 64), server)
	return fmt.Sprintf(`label_replace(max(max_over_time(container_memory_working_set_bytes{role="build"}[%[1]s]) and on (instance, id) %[2]s), "signal", "memory", "", "")
or label_replace(max(max_over_time(container_cpu_usage_seconds_total{role="build",cpu="total"}[%[1]s]) and on (instance, id) %[2]s), "signal", "cpu", "", "")
or label_replace(max(last_over_time(server:node_cpus:count{server=%[3]s}[%[1]s])), "signal", "cores", "", "")`, w, sel, server)
}

// BuildUsage implements build.History.
func (h *BuildHistory) BuildUsage(ctx context.Context, b build.Finished) (build.Usage, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	v, err := h.querier.Query(ctx, h.BuildUsageQuery(b), b.EndedAt)
	if err != nil {
		return build.Usage{}, false, fmt.Errorf("querying build history of %s: %w", b.ID, err)
	}
	var u build.Usage
	for _, s := range v {
		switch s.Metric["signal"] {
		case "memory":
			u.PeakMemoryBytes = float64(s.Value)
		case "cpu":
			u.CPUSeconds = float64(s.Value)
		case "cores":
			u.ServerCores = float64(s.Value)
		}
	}
	return u, u.PeakMemoryBytes > 0, nil
}
