// Command berth-fleetsim simulates a fleet of servers for tests, demos and
// benchmarks: each simulated server is its own scrape target on loopback
// that looks to Prometheus exactly like a berth-exporter.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/berth-dev/berth/internal/clidoc"
	"github.com/berth-dev/berth/internal/fleetsim"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.New("berth-fleetsim", "Simulates a fleet of berth-exporters on loopback for tests, demos and benchmarks.")
	var (
		servers       = app.Flag("servers", "Number of simulated servers (build servers included).").Default("10").Int()
		buildServers  = app.Flag("build-servers", "How many of them are build servers (role=build).").Default("2").Int()
		organizations = app.Flag("organizations", "Number of organizations the servers are spread over (0: none).").Default("3").Int()
		seed          = app.Flag("seed", "Seed of the generated fleet; the same seed gives the same fleet.").Default("1").Uint64()
		host          = app.Flag("listen-host", "Address the simulated servers listen on.").Default("127.0.0.1").String()
		basePort      = app.Flag("base-port", "Port of the first server, the next ones follow (0: any free ports).").Default("0").Int()
		fileSD        = app.Flag("file-sd.path", "Write the targets to this file in Prometheus's file_sd JSON format.").String()
		promConfig    = app.Flag("prometheus-config.path", "Write a Prometheus configuration scraping the fleet through --file-sd.path to this file.").String()
		interval      = app.Flag("scrape-interval", "Scrape and rule evaluation interval written to --prometheus-config.path.").Default("15s").Duration()
		ruleFiles     = app.Flag("prometheus-config.rule-file", "rule_files entry of --prometheus-config.path (repeatable).").Strings()
		staleServers  = app.Flag("stale.servers", "Number of app servers that stop answering (HTTP 503) after --stale.after, so their metrics go stale.").Default("0").Int()
		staleAfter    = app.Flag("stale.after", "When the --stale.servers stop answering.").Default("2m").Duration()
		control       = app.Flag("web.control-address", "Address of the control API (GET /servers, POST /servers/{name}/answering?value=false); empty: off.").Default("").String()
	)
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	app.Version(version.Print("berth-fleetsim"))
	app.HelpFlag.Short('h')
	clidoc.AddFlag(app)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "berth-fleetsim: error: %v\n", err)
		return 2
	}
	logger := promslog.New(logConfig)
	for flag, d := range map[string]time.Duration{"scrape-interval": *interval, "stale.after": *staleAfter} {
		if d <= 0 {
			fmt.Fprintf(os.Stderr, "berth-fleetsim: error: --%s must be > 0, got %s\n", flag, d)
			return 2
		}
	}
	if *promConfig != "" && *fileSD == "" {
		fmt.Fprintln(os.Stderr, "berth-fleetsim: error: --prometheus-config.path needs --file-sd.path")
		return 2
	}

	spec, err := fleetsim.Generate(fleetsim.GenerateOptions{Servers: *servers, BuildServers: *buildServers, Organizations: *organizations, Seed: *seed})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-fleetsim: error: %v\n", err)
		return 2
	}
	if *staleServers < 0 || *staleServers > *servers-*buildServers {
		fmt.Fprintf(os.Stderr, "berth-fleetsim: error: --stale.servers must be within 0..%d (the app servers)\n", *servers-*buildServers)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fleet, err := fleetsim.Start(ctx, spec, fleetsim.ListenConfig{Host: *host, BasePort: *basePort})
	if err != nil {
		logger.Error("starting the fleet failed", "err", err)
		return 1
	}
	defer fleet.Close()
	for _, s := range fleet.Servers() {
		sp := s.Spec()
		logger.Info("simulated server", "server", sp.Name, "role", sp.Role, "organization", sp.Organization, "address", s.Address())
	}

	if *fileSD != "" {
		if err := fleet.WriteFileSD(*fileSD); err != nil {
			logger.Error("writing file_sd failed", "err", err)
			return 1
		}
		logger.Info("wrote file_sd targets", "path", *fileSD)
	}
	if *promConfig != "" {
		abs, err := filepath.Abs(*fileSD)
		if err == nil {
			err = os.WriteFile(*promConfig, []byte(fleetsim.ScrapeConfig("berth-fleetsim", abs, *interval, *ruleFiles...)), 0o644)
		}
		if err != nil {
			logger.Error("writing the prometheus config failed", "err", err)
			return 1
		}
		logger.Info("wrote prometheus config", "path", *promConfig)
	}

	if *staleServers > 0 {
		go func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(*staleAfter):
			}
			made := 0
			for _, s := range fleet.Servers() {
				if made < *staleServers && s.Spec().Role == "app" {
					s.SetAnswering(false)
					made++
					logger.Info("server stopped answering", "server", s.Name())
				}
			}
		}()
	}

	if *control != "" {
		l, err := net.Listen("tcp", *control)
		if err != nil {
			logger.Error("control API listen failed", "err", err)
			return 1
		}
		srv := &http.Server{Handler: fleet.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("control API failed", "err", err)
			}
		}()
		defer srv.Close()
		logger.Info("control API listening", "address", l.Addr().String())
	}

	logger.Info("fleet running", "servers", len(fleet.Servers()))
	<-ctx.Done()
	logger.Info("stopping")
	return 0
}
