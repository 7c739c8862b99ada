// Command sluice exports SQLite databases as SQL, CSV or JSON dumps to a
// file, stdout, a local directory store or S3-compatible storage, restores
// SQL dumps, downloads stored dumps, and serves the HTTP API.
//
// This package is the only place that wires concrete backends together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
)

// version is overridden at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usageText = `sluice exports SQLite databases to files, directories and S3-compatible storage.

Usage:
  sluice <command> [flags]

Commands:
  dump      dump a database as sql, csv, json or ndjson to a file, stdout or a store
  restore   load a SQL dump (optionally .gz or .zst) into a new database
  get       download a stored dump (s3:// or file:// URL), resuming a partial download
  verify    prove a dump holds exactly its source's rows (manifest or --db)
  serve     run the HTTP API and the durable export jobs
  version   print the version
  help      show help for a command: sluice help <command>

Run 'sluice <command> -h' for the flags of a command.
`

// usageError marks a mistake in how sluice was invoked; it exits with 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// env is what a command sees of the process: its streams, environment and
// logger. Tests build their own; main uses the real ones.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
	// stderrTTY reports whether stderr is a terminal (progress bars).
	stderrTTY bool
	// stdoutTTY reports whether stdout is a terminal.
	stdoutTTY bool
}

// command is one subcommand.
type command struct {
	name  string
	short string
	run   func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"dump", "dump a database", runDump},
		{"restore", "load a SQL dump into a new database", runRestore},
		{"get", "download a stored dump", runGet},
		{"verify", "prove a dump restores to exactly its source", runVerify},
		{"serve", "run the HTTP API", runServe},
		{"version", "print the version", runVersion},
		{"export-worker", "run a server's export jobs (started by serve)", runExportWorker},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	e := &env{
		stdin:     os.Stdin,
		stdout:    os.Stdout,
		stderr:    os.Stderr,
		getenv:    os.Getenv,
		stderrTTY: isTerminal(os.Stderr),
		stdoutTTY: isTerminal(os.Stdout),
	}
	stopProfile := startCPUProfile(e)
	code := run(ctx, e, os.Args[1:])
	stopProfile()
	stop()
	os.Exit(code)
}

// run executes one invocation and returns the process exit code: 0 on
// success, 2 for usage errors, 1 for every other failure. It never lets a
// panic escape: an operator sees a message, not a stack dump.
func run(ctx context.Context, e *env, args []string) (code int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(e.stderr, "sluice: internal error: %v\n", p)
			if e.getenv("SLUICE_DEBUG") != "" {
				e.stderr.Write(debug.Stack())
			}
			code = 1
		}
	}()
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usageText)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			// "sluice help dump" is "sluice dump -h".
			name, rest = rest[0], []string{"-h"}
			break
		}
		fmt.Fprint(e.stdout, usageText)
		return 0
	case "-v", "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, rest)
		return exitCode(e, c.name, err)
	}
	fmt.Fprintf(e.stderr, "sluice: unknown command %q\n\n%s", name, usageText)
	return 2
}

// exitCode reports err on stderr and maps it to an exit code.
func exitCode(e *env, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "sluice %s: %s\nRun 'sluice %s -h' for usage.\n", name, ue.msg, name)
		return 2
	}
	if errors.Is(err, errFlagParse) {
		// The flag package has already printed the problem and the usage.
		return 2
	}
	// Package dump prefixes its errors with "dump: ", which would read
	// "sluice dump: dump: ..." here.
	fmt.Fprintf(e.stderr, "sluice %s: %s\n", name, strings.TrimPrefix(err.Error(), name+": "))
	return 1
}

// errFlagParse marks a flag error already reported by the flag package.
var errFlagParse = errors.New("bad flags")

// newFlagSet returns a FlagSet that returns errors instead of exiting,
// with a usage text naming the command. Mistakes are reported on stderr;
// the usage asked for with -h goes to stdout (see parseFlags), so that
// `sluice dump -h | less` works.
func newFlagSet(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("sluice "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sluice %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args. -h, -help and --help print the usage on stdout
// and return flag.ErrHelp (exit 0); a flag mistake is reported with the
// usage on stderr and returns errFlagParse (exit 2).
func parseFlags(e *env, fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		out := fs.Output()
		fs.SetOutput(e.stdout)
		usage()
		fs.SetOutput(out)
		return err
	case err != nil:
		usage()
		return errFlagParse
	}
	return nil
}

// logFlags registers --log-level on fs and returns a constructor for the
// command's logger, which writes text records to stderr.
func logFlags(fs *flag.FlagSet, def string) func(e *env) (*slog.Logger, error) {
	level := fs.String("log-level", def, "log level: debug, info, warn or error")
	return func(e *env) (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(strings.TrimSpace(*level))); err != nil {
			return nil, usagef("bad --log-level %q (want debug, info, warn or error)", *level)
		}
		return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: l})), nil
	}
}

func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "version", "")
	if err := parseFlags(e, fs, args); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sluice %s\n", versionString())
	return nil
}

// versionString is the link-time version, or the module version for a
// binary built by `go install module@version`.
func versionString() string {
	if bi, ok := debug.ReadBuildInfo(); ok && version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// startCPUProfile writes a CPU profile to $SLUICE_CPUPROFILE, if set, for
// `go tool pprof`; the returned function stops it.
func startCPUProfile(e *env) func() {
	path := e.getenv("SLUICE_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "sluice: cpu profile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(e.stderr, "sluice: cpu profile: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// isTerminal reports whether f is a terminal, using only the standard
// library: a character device that is not the null device.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}
