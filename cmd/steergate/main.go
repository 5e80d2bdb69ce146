// Command steergate is the Steergate gateway: an OpenAI-compatible HTTP
// gateway that steers LLM backends with reward models at inference time.
// This file only wires: flags, config, construction, run, shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/prefs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `steergate: an OpenAI-compatible gateway that steers LLMs with reward models.

Usage:
  steergate serve [--config FILE]            serve (default configs/default.yaml)
  steergate check-config FILE                validate a config and print it, secrets redacted
  steergate reference-server --listen ADDR   the embedded demo model over the Ollama and OpenAI wire formats
  steergate tokenize --tokenizer FILE        JSON array of strings in, JSON array of id arrays out
  steergate score --config FILE --reward NAME   JSON lines of {prompt, response} in, objective scores out
  steergate eval [--config FILE] [--prompts FILE] [--setting JSON]...   strategies over a prompt set: CSV and SVG
  steergate hash-key [KEY]                   print an API key's SHA-256 hash for auth.keys (the key from stdin without KEY)
  steergate version                          print the version
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var ce configs.Errors
		if errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, ce.Error())
		} else {
			fmt.Fprintln(os.Stderr, "steergate:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		file := fs.String("config", configs.DefaultFile, "config file")
		if err := parseAll(fs, args); err != nil {
			return fmt.Errorf("%w (a config is given as --config FILE)", err)
		}
		return serve(ctx, *file, stderr)
	case "check-config":
		if len(args) != 1 {
			return errors.New("usage: steergate check-config FILE")
		}
		cfg, err := configs.Load(args[0])
		if err != nil {
			return err
		}
		// The validation serve runs, short of connecting and loading models.
		a, err := assemble(cfg, newLogger(configs.Log{Level: "error", Format: cfg.Log.Format}, stderr), checkOnly)
		if err != nil {
			return err
		}
		a.close()
		out, err := configs.Effective(cfg)
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	case "reference-server":
		fs := flag.NewFlagSet("reference-server", flag.ContinueOnError)
		listen := fs.String("listen", "127.0.0.1:11435", "address to listen on")
		delay := fs.Duration("token-delay", 0, "delay between tokens")
		ttft := fs.Duration("first-token-delay", 0, "delay before the first token")
		if err := parseAll(fs, args); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "reference server on %s (Ollama /api/*, OpenAI /v1/*)\n", ln.Addr())
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		srv := reference.NewServer(reference.New("reference", reference.Options{TokenDelay: *delay, FirstTokenDelay: *ttft}))
		return srv.Serve(ctx, ln)
	case "score":
		return score(ctx, args, os.Stdin, stdout, stderr)
	case "tokenize":
		return tokenize(args, os.Stdin, stdout)
	case "eval":
		return evalCmd(ctx, args, stdout, stderr)
	case "version":
		if len(args) > 0 {
			return fmt.Errorf("version: unexpected argument %q", args[0])
		}
		fmt.Fprintln(stdout, "steergate", version)
		return nil
	case "hash-key":
		key := strings.Join(args, " ")
		if len(args) == 0 {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
			if err != nil {
				return err
			}
			key = strings.TrimRight(string(b), "\r\n")
		}
		if key == "" {
			return errors.New("hash-key: give the key as an argument or on standard input")
		}
		fmt.Fprintln(stdout, prefs.Hash(key))
		return nil
	case "help", "-h", "--help":
		if len(args) > 0 {
			return fmt.Errorf("%s: unexpected argument %q", cmd, args[0])
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// parseAll parses a command's flags and refuses what is left over: an
// argument it would otherwise ignore (serve FILE serving the default).
func parseAll(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func newLogger(cfg configs.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, file string, stderr io.Writer) error {
	cfg, err := configs.Load(file)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	slog.SetDefault(log)
	floorHeap()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	app, err := assemble(cfg, log, serving)
	if err != nil {
		return err
	}
	defer app.close()
	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("%s:server.listen: cannot listen on %s: %w", file, cfg.Server.Listen, err)
	}
	log.Info("steergate serving", "addr", ln.Addr().String(), "config", file, "version", version, "models", len(app.router.List()))
	err = app.server.Serve(ctx, ln)
	log.Info("steergate stopped")
	return err
}

// loadOffline loads a config and builds its backends, rewards and engine
// for the offline commands (score, eval), which log only warnings.
func loadOffline(file string, stderr io.Writer) (*app, error) {
	cfg, err := configs.Load(file)
	if err != nil {
		return nil, err
	}
	return assemble(cfg, newLogger(configs.Log{Level: "warn", Format: cfg.Log.Format}, stderr), offline)
}
