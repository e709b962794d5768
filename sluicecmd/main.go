// Package sluicecmd is the sluice command line as a library, so that a
// custom binary with plugins is a three-line main:
//
//	package main
//
//	import (
//		"github.com/sluicehq/sluice/sluicecmd"
//
//		_ "github.com/sluicehq/sluice/components/all" // the built-in components
//		_ "example.com/you/sluice-foo"                // a plugin
//	)
//
//	func main() { sluicecmd.Main() }
//
// The package registers no component itself: a binary chooses its
// components by importing them (cmd/sluice imports components/all; a binary
// built by sluice-build imports components/all and each plugin).
package sluicecmd

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"

	"github.com/sluicehq/sluice/convert/postgresexporter"
	"github.com/sluicehq/sluice/convert/statsdexporter"
	"github.com/sluicehq/sluice/pipeline"
	"github.com/sluicehq/sluice/runtime"
)

// defaultListenAddr is the agent's HTTP address unless a flag says otherwise.
const defaultListenAddr = "0.0.0.0:9470"

// The distributions the repository ships: which set of components a binary
// was built with, shown by sluice components, sluice version and the status
// UI. A binary built by sluice-build names its own (custom by default).
const (
	// DistributionFull is cmd/sluice: every standard component.
	DistributionFull = "full"
	// DistributionLite is cmd/sluice-lite: the sidecar's components, no
	// Kubernetes client and no PostgreSQL driver.
	DistributionLite = "lite"
	// DistributionCustom is the name of a binary whose main calls Main.
	DistributionCustom = "custom"
)

// Main runs the CLI with the process's arguments and exits with its code; it
// names the distribution custom (see MainDistribution).
func Main() { MainDistribution(DistributionCustom) }

// MainDistribution is Main in a binary that names its distribution (the set
// of components its main imports), e.g. the lite distribution's main.
// As PID 1, run starts the agent under a reaping init (init_linux.go).
func MainDistribution(name string) {
	if code, ok := runAsInit(os.Args[1:], os.Stderr); ok {
		os.Exit(code)
	}
	os.Exit(RunDistribution(name, os.Args[1:], os.Stdout, os.Stderr))
}

// Run runs the CLI with args (without the program name), writing to stdout
// and stderr, and returns the process exit code: 0 success, 1 an invalid
// config or a failed run, 2 a usage error.
func Run(args []string, stdout, stderr io.Writer) int {
	return RunDistribution(DistributionCustom, args, stdout, stderr)
}

// RunDistribution is Run in a binary of the named distribution.
func RunDistribution(distribution string, args []string, stdout, stderr io.Writer) int {
	if distribution == "" {
		distribution = DistributionCustom
	}
	app := kingpin.New("sluice", "Sluice: a metrics agent configured in HCL.")
	app.Writer(stdout)
	app.ErrorWriter(stderr)
	app.HelpFlag.Short('h')
	// kingpin calls terminate after printing help (--help, help CMD) and
	// then goes on parsing: a required argument missing from "run --help"
	// would turn the help into a usage error. Record the request instead of
	// exiting here (Run is a library function that must return), and let it
	// win over whatever Parse says next.
	terminated, terminateCode := false, 0
	app.Terminate(func(code int) {
		if !terminated {
			terminated, terminateCode = true, code
		}
	})

	runCmd := app.Command("run", "Run the pipeline described by CONFIG.")
	runArgs := runFlags{distribution: distribution}
	runCmd.Arg("config", "HCL config file.").Required().StringVar(&runArgs.config)
	runCmd.Flag("server.http.listen-addr", "Address of the agent's HTTP server.").Default(defaultListenAddr).StringVar(&runArgs.listenAddr)
	runCmd.Flag("storage.path", "Directory for component state; each component gets a subdirectory.").Default("data/").StringVar(&runArgs.storagePath)
	runCmd.Flag("web.config.file", "Path to a web config file (the exporter-toolkit format of Prometheus and its exporters) that enables TLS, client certificates and basic auth on the agent's HTTP server and on components' own listeners. Re-read on every connection and request.").Default("").StringVar(&runArgs.webConfigFile)
	runCmd.Flag("web.probe-listen-address", "Also serve /-/healthy and /-/ready, and nothing else, on this address in plain HTTP without auth, for kubelet probes when --web.config.file requires auth (off by default).").Default("").StringVar(&runArgs.probeListenAddr)
	runCmd.Flag("web.enable-lifecycle", "Enable POST /-/reload.").BoolVar(&runArgs.enableLifecycle)
	runCmd.Flag("web.read-header-timeout", "How long a client may take to send a request's line and headers, on the agent's server and components' own listeners.").Default(pipeline.DefaultReadHeaderTimeout.String()).DurationVar(&runArgs.timeouts.ReadHeader)
	runCmd.Flag("web.read-body-timeout", "How long a client may take to send a request's body after its headers, on the agent's server and components' own listeners; a stalled upload is cut off.").Default(pipeline.DefaultReadBodyTimeout.String()).DurationVar(&runArgs.timeouts.ReadBody)
	runCmd.Flag("config.reload-debounce", "How long the config directory must be quiet before a change is applied.").Default("250ms").DurationVar(&runArgs.debounce)
	runCmd.Flag("config.check-interval", "How often the config and the files it uses are checked for changes besides file system events (0 disables).").Default("5s").DurationVar(&runArgs.checkInterval)
	runCmd.Flag("config.allow-empty", "Accept a config that declares no components (refused by default: an empty file is usually a truncated write).").BoolVar(&runArgs.allowEmpty)
	runCmd.Flag("web.external-url", "The URL under which the agent is reached from outside (behind a reverse proxy, e.g. https://proxy.example.com/sluice/); the UI's links use its path.").PlaceHolder("<URL>").StringVar(&runArgs.externalURL)
	runCmd.Flag("web.route-prefix", "Prefix of every path the agent serves (the UI, /metrics, /-/healthy, sinks' paths). Defaults to the path of --web.external-url.").PlaceHolder("<path>").StringVar(&runArgs.routePrefix)
	runCmd.Flag("runtime.gogc", "The Go garbage collector's target percentage (GOGC) for the agent. The GOGC environment variable, if set, wins. Lower values hold less memory between collections and collect more often.").Default(strconv.Itoa(defaultGOGC)).IntVar(&runArgs.gogc)
	runCmd.Flag("runtime.keep-startup-pages", "Keep the executable's code and read-only data mapped once the agent is ready. By default (Linux) the agent then drops its mappings of them, most of which only starting it used: they stay in the page cache and what the agent still runs is mapped again at its first use, which takes most of the file-backed part out of the idle RSS.").BoolVar(&runArgs.keepStartupPages)
	logCfg := &promslog.Config{Level: promslog.NewLevel(), Format: promslog.NewFormat()}
	runCmd.Flag("log.level", "Only log messages with this severity or above: debug, info, warn, error.").
		Default("info").HintOptions(promslog.LevelFlagOptions...).SetValue(logCfg.Level)
	runCmd.Flag("log.format", "Log format: logfmt or json.").
		Default("logfmt").HintOptions(promslog.FormatFlagOptions...).SetValue(logCfg.Format)

	validateCmd := app.Command("validate", "Load and validate CONFIG exactly as run would, without running it.")
	validateConfig := validateCmd.Arg("config", "HCL config file.").Required().String()
	validateOpts := runtime.LoadOptions{}
	validateCmd.Flag("config.allow-empty", "Accept a config that declares no components, as run --config.allow-empty does.").BoolVar(&validateOpts.AllowEmpty)
	validateWeb := validateCmd.Flag("web.config.file", "Also check this web config file, as run --web.config.file does at start.").Default("").String()
	validateCmd.Flag("server.http.listen-addr", "The agent's HTTP address, as given to run: components must not listen on it.").Default(defaultListenAddr).StringVar(&validateOpts.AgentListenAddress)
	validateCmd.Flag("web.probe-listen-address", "The agent's probe address, as given to run: components must not listen on it.").Default("").StringVar(&validateOpts.AgentProbeListenAddress)

	fmtCmd := app.Command("fmt", "Rewrite HCL files in canonical format.")
	fmtWrite := fmtCmd.Flag("write", "Write the result to the files instead of stdout.").Short('w').Bool()
	fmtCheck := fmtCmd.Flag("check", "Exit 1 and list the files that are not formatted.").Bool()
	fmtFiles := fmtCmd.Arg("files", "HCL files.").Required().ExistingFiles()

	compCmd := app.Command("components", "List the compiled-in components, or show one.")
	compJSON := compCmd.Flag("json", "Print JSON.").Bool()
	compMarkdown := compCmd.Flag("markdown", "Print the Markdown reference (docs/components.md).").Bool()
	compName := compCmd.Arg("name", "Show this component's arguments and example.").String()

	convertCmd := app.Command("convert", "Print the Sluice config equivalent to another program's configuration.")
	convertStatsd := convertCmd.Command("statsd_exporter", "Convert a statsd_exporter "+statsdexporter.Version+" command line: sluice convert statsd_exporter -- FLAGS...")
	convertStatsdArgs := convertStatsd.Arg("flags", "statsd_exporter's flags, after --.").Strings()
	convertPostgres := convertCmd.Command("postgres_exporter", "Convert a postgres_exporter queries file (--extend.query-path) and its collectors to a postgres_source.")
	convertPostgresOpts := postgresexporter.Options{}
	convertPostgres.Flag("queries", "postgres_exporter's queries YAML.").Required().StringVar(&convertPostgresOpts.QueriesPath)
	convertPostgres.Flag("collectors", "postgres_exporter collectors to carry over, comma-separated or repeated (database, stat_database, stat_activity, locks, replication, bgwriter).").StringsVar(&convertPostgresOpts.Collectors)
	convertPostgres.Flag("dsn-env", "Environment variable holding the DSN.").Default("DATA_SOURCE_NAME").StringVar(&convertPostgresOpts.DSNEnv)
	convertPostgres.Flag("web.listen-address", "postgres_exporter's --web.listen-address: where the metrics_sink listens.").Default(":9187").StringVar(&convertPostgresOpts.ListenAddress)

	testCmd := app.Command("test", "Run pipeline unit tests (*.test.hcl files): fixtures in, expositions compared, on a fake clock, without sockets (docs/testing.md).")
	testFiles := testCmd.Arg("files", "Test files (*.test.hcl).").Required().Strings()
	versionCmd := app.Command("version", "Print the version.")

	cmd, err := app.Parse(args)
	if terminated {
		return terminateCode
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice: %v (see sluice --help)\n", err)
		return 2
	}
	switch cmd {
	case runCmd.FullCommand():
		runArgs.logger = promslog.New(logCfg)
		return runAgent(runArgs, stderr)
	case validateCmd.FullCommand():
		return validate(*validateConfig, validateOpts, *validateWeb, stdout, stderr)
	case fmtCmd.FullCommand():
		return formatFiles(*fmtFiles, *fmtWrite, *fmtCheck, stdout, stderr)
	case compCmd.FullCommand():
		return listComponents(distribution, compiledIn(), *compName, *compJSON, *compMarkdown, stdout, stderr)
	case convertStatsd.FullCommand():
		return convertStatsdExporter(*convertStatsdArgs, stdout, stderr)
	case convertPostgres.FullCommand():
		return convertPostgresExporter(convertPostgresOpts, stdout, stderr)
	case testCmd.FullCommand():
		return runTests(*testFiles, stdout, stderr)
	case versionCmd.FullCommand():
		bi, _ := buildInfo()
		printVersion(stdout, distribution, describeComponents(pipeline.Registrations(), bi), bi)
		return 0
	}
	return 2
}

// compiledIn documents every registered component, with its module.
func compiledIn() []runtime.ComponentDoc {
	bi, _ := buildInfo()
	return describeComponents(pipeline.Registrations(), bi)
}
