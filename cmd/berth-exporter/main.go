// Command berth-exporter is Berth's per-server agent: system metrics under
// node_exporter's names, container metrics under cAdvisor's names, and the
// server's identity (name, role, organization, disk threshold).
package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"

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
	"github.com/berth-dev/berth/internal/clidoc"
)

// healthPath answers 200 while the process runs.
const healthPath = "/-/healthy"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.New("berth-exporter", "Berth's per-server agent: system and container metrics for capacity monitoring and placement.")
	metricsPath := app.Flag("web.telemetry-path", "Path under which to expose metrics (absolute, e.g. /metrics).").Default("/metrics").String()
	webConfig := kingpinflag.AddFlags(app, ":9830")
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print("berth-exporter"))
	app.HelpFlag.Short('h')

	registry := exporter.NewRegistry(app)
	identity.Register(registry)
	system.Register(registry)
	containers.Register(registry)
	clidoc.AddFlag(app)

	if _, err := app.Parse(args); err != nil {
		return refuse(nameFlag(app, args, err))
	}
	if err := validateWebFlags(*metricsPath, webConfig); err != nil {
		return refuse(err)
	}
	logger := promslog.New(logConfig)
	logger.Info("starting berth-exporter", "version", version.Info(), "build_context", version.BuildContext())

	enabled, err := registry.Build(logger)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return refuse(err)
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
	mux.HandleFunc(healthPath, func(w http.ResponseWriter, _ *http.Request) {
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
				{Address: healthPath, Text: "Health"},
			},
			// No /debug/pprof handlers are served: do not link to them.
			Profiling: "false",
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

// refuse reports a configuration error the way kingpin reports its own and
// returns the exit code for it.
func refuse(err error) int {
	fmt.Fprintf(os.Stderr, "berth-exporter: error: %v\n", err)
	return 2
}

// nameFlag adds the flag's name to a value error from kingpin: kingpin
// returns a flag value's own parse error ("unrecognized log level loud",
// strconv's and time's messages) without saying which flag it came from.
// It replays the parsed flags in order; the first value refused again is
// the culprit. Errors that already name a flag are returned unchanged.
func nameFlag(app *kingpin.Application, args []string, err error) error {
	if strings.Contains(err.Error(), "--") || strings.Contains(err.Error(), "flag") {
		return err
	}
	pc, perr := app.ParseContext(args)
	if perr != nil {
		return err
	}
	for _, el := range pc.Elements {
		f, ok := el.Clause.(*kingpin.FlagClause)
		if !ok || el.Value == nil {
			continue
		}
		model := f.Model()
		if model.Value.Set(*el.Value) != nil {
			return fmt.Errorf("invalid --%s %q: %w", model.Name, *el.Value, err)
		}
	}
	return err
}

// telemetryPathChars is what a metrics path may contain: RFC 3986 path
// characters without percent-encoding and without the braces that
// http.ServeMux would read as a wildcard.
var telemetryPathChars = regexp.MustCompile(`^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$`)

// validateWebFlags checks what http.ServeMux and the listener would
// otherwise reject with a panic or an error that does not name the flag.
func validateWebFlags(metricsPath string, webConfig *web.FlagConfig) error {
	switch {
	case metricsPath == "":
		return errors.New("invalid --web.telemetry-path: must not be empty (e.g. /metrics)")
	case !strings.HasPrefix(metricsPath, "/"):
		return fmt.Errorf("invalid --web.telemetry-path %q: must start with / (e.g. /%s)", metricsPath, metricsPath)
	case !telemetryPathChars.MatchString(metricsPath):
		return fmt.Errorf("invalid --web.telemetry-path %q: only letters, digits, / and the characters ._~!$&'()*+,;=:@- are allowed", metricsPath)
	case metricsPath != "/" && path.Clean(metricsPath) != metricsPath:
		return fmt.Errorf("invalid --web.telemetry-path %q: must be a clean path (no trailing /, //, . or ..), e.g. %s", metricsPath, path.Clean(metricsPath))
	case metricsPath == healthPath:
		return fmt.Errorf("invalid --web.telemetry-path %q: %s is the health endpoint", metricsPath, healthPath)
	}
	if webConfig.WebSystemdSocket == nil || !*webConfig.WebSystemdSocket {
		for _, addr := range *webConfig.WebListenAddresses {
			if strings.HasPrefix(addr, "vsock://") {
				continue // exporter-toolkit parses these itself
			}
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return fmt.Errorf("invalid --web.listen-address %q: %w (e.g. :9830 or 127.0.0.1:9830)", addr, err)
			}
		}
	}
	if err := web.Validate(*webConfig.WebConfigFile); err != nil {
		return fmt.Errorf("invalid --web.config.file %q: %w", *webConfig.WebConfigFile, err)
	}
	return nil
}
