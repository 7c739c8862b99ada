package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"zombiezen.com/go/sqlite"
)

const serveSynopsis = `[--config sluice.json] [--listen 127.0.0.1:8080] [--data-dir ./data]

Runs the HTTP API and the durable export jobs. With no configuration it
serves ./data/default.db (created if missing) at the root and stores
exports in ./data/exports. Settings come from the built-in defaults,
then the JSON file (unknown keys are errors), then the SLUICE_*
environment variables listed below, then these flags. SIGTERM or SIGINT
shuts down gracefully: running jobs checkpoint and the process exits 0.`

// serveFlags are serve's command-line overrides; empty means not given.
type serveFlags struct {
	config  string
	listen  string
	dataDir string
}

// loadServeConfig builds the effective configuration: defaults, file,
// environment, flags; then validates it.
func loadServeConfig(e *env, f serveFlags) (Config, error) {
	c := NewConfig()
	if f.config != "" {
		if err := loadConfigFile(f.config, &c); err != nil {
			return c, err
		}
	}
	if err := applyEnv(&c, e.getenv); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if f.listen != "" {
		c.Listen = f.listen
	}
	if f.dataDir != "" {
		c.DataDir = f.dataDir
	}
	if err := c.validate(); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if len(c.Tokens.Admin)+len(c.Tokens.Client) == 0 && !loopbackOnly(c.Listen) {
		return c, fmt.Errorf("config: refusing to listen on %s without tokens; configure tokens or listen on 127.0.0.1", c.Listen)
	}
	return c, nil
}

// prepareDataDir creates the data directory, the file store's directory
// and the default database when it does not exist yet (the embedded
// default: an empty WAL-mode database).
func prepareDataDir(c Config, log *slog.Logger) error {
	if err := os.MkdirAll(c.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if c.Store.Type == "file" {
		if err := os.MkdirAll(c.Store.Dir, 0o755); err != nil {
			return fmt.Errorf("store dir: %w", err)
		}
	}
	def := c.Databases[c.DefaultDatabase]
	if _, err := os.Stat(def); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(def), 0o755); err != nil {
			return fmt.Errorf("default database: %w", err)
		}
		conn, err := sqlite.OpenConn(def, sqlite.OpenReadWrite|sqlite.OpenCreate|sqlite.OpenWAL)
		if err != nil {
			return fmt.Errorf("create default database %s: %w", def, err)
		}
		if err := conn.Close(); err != nil {
			return fmt.Errorf("create default database %s: %w", def, err)
		}
		log.Info("created the default database", "path", def)
	} else if err != nil {
		return fmt.Errorf("default database %s: %w", def, err)
	}
	for name, p := range c.Databases {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("database %q: %w", name, err)
		}
	}
	return nil
}

func runServe(ctx context.Context, e *env, args []string) error {
	fl := newFlagSet(e, "serve", serveSynopsis)
	base := fl.Usage
	fl.Usage = func() {
		base()
		fmt.Fprintln(fl.Output(), "\nEnvironment variables (each overrides the config file's setting):")
		for _, v := range envVars {
			fmt.Fprintf(fl.Output(), "  %-28s %s\n", v.name, v.help)
		}
	}
	var f serveFlags
	fl.StringVar(&f.config, "config", "", "JSON config file (strict: unknown keys are errors)")
	fl.StringVar(&f.listen, "listen", "", "listen address (default 127.0.0.1:8080)")
	fl.StringVar(&f.dataDir, "data-dir", "", "data directory (default ./data)")
	newLogger := logFlags(fl, "info")
	if err := parseFlags(e, fl, args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usagef("unexpected argument %q", fl.Arg(0))
	}
	log, err := newLogger(e)
	if err != nil {
		return err
	}
	stopWithGoRun()
	cfg, err := loadServeConfig(e, f)
	if err != nil {
		return err
	}
	if err := prepareDataDir(cfg, log); err != nil {
		return err
	}
	return serve(ctx, e, cfg, log)
}
