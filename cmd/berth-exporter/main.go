// Command berth-exporter is Berth's per-server agent: system metrics under
// node_exporter's names, container metrics under cAdvisor's names, and the
// server's identity (name, role, organization, disk threshold).
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/berth-dev/berth/exporter"
	"github.com/berth-dev/berth/exporter/containers"
	"github.com/berth-dev/berth/exporter/identity"
	"github.com/berth-dev/berth/exporter/system"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.New("berth-exporter", "Berth's per-server agent: system and container metrics for capacity monitoring and placement.")
	metricsPath := app.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
	webConfig := kingpinflag.AddFlags(app, ":9830")
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print("berth-exporter"))
	app.HelpFlag.Short('h')

	registry := exporter.NewRegistry(app)
	identity.Register(registry)
	system.Register(registry)
	containers.Register(registry)

	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "berth-exporter: error: %v\n", err)
		return 2
	}
	logger := promslog.New(logConfig)
	logger.Info("starting berth-exporter", "version", version.Info(), "build_context", version.BuildContext())

	enabled, err := registry.Build(logger)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		fmt.Fprintf(os.Stderr, "berth-exporter: error: %v\n", err)
		return 2
	}
	scraper := exporter.NewScraper(enabled, logger)
	logger.Info("enabled collectors", "collectors", scraper.Names())

	static := prometheus.NewRegistry()
	static.MustRegister(
		versioncollector.NewCollector("berth_exporter"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	mux := http.NewServeMux()
	mux.Handle(*metricsPath, exporter.NewHandler(scraper, static, logger))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, "Healthy")
	})
	if *metricsPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "Berth Exporter",
			Description: "System and container metrics for Berth's capacity monitoring and placement",
			Version:     version.Info(),
			Links: []web.LandingLinks{
				{Address: *metricsPath, Text: "Metrics"},
				{Address: "/-/healthy", Text: "Health"},
			},
		})
		if err != nil {
			logger.Error("building landing page", "err", err)
			return 1
		}
		mux.Handle("/", landing)
	}

	server := &http.Server{Handler: mux}
	if err := web.ListenAndServe(server, webConfig, logger); err != nil {
		logger.Error("serving", "err", err)
		return 1
	}
	return 0
}
