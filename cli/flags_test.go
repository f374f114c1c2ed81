package cli

import (
	"bytes"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// settings parses args as keydesk would up to running the command: the
// global flags, the environment, then the command's flags.
func settings(t *testing.T, args ...string) (*config, error) {
	t.Helper()
	var stderr bytes.Buffer
	cfg, top, err := parseSettings(args, &stderr)
	if err != nil {
		return nil, err
	}
	_, rest, cmd := findCommand(top.Args())
	if cmd == nil {
		t.Fatalf("no command in %q", args)
	}
	in := &invocation{cmd: cmd, cfg: cfg, globals: top, args: rest, stderr: &stderr}
	return cfg, in.parse(func(fs *flag.FlagSet) {
		if cmd.name == "account create" {
			fs.String("name", "", "")
		}
	})
}

// README's Configuration table: every setting is a flag with a KEYDESK_*
// fallback. A flag given wins over the variable; a global flag may come
// before or after the command, and after wins; an empty variable is unset.
func TestFlagsWithEnvironmentFallbacks(t *testing.T) {
	t.Setenv("KEYDESK_SMTP_MAX_CONNS", "7")
	t.Setenv("KEYDESK_SESSION_IDLE", "1h")
	t.Setenv("KEYDESK_SIGNUP", "false")
	t.Setenv("KEYDESK_DB", "from-env.db")
	t.Setenv("KEYDESK_ADDR", "")
	t.Setenv("KEYDESK_SMTP_ALLOW_INSECURE_AUTH", "true")
	cfg, err := settings(t, "--session-idle", "2h", "serve")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SMTPMaxConns != 7 || cfg.SessionIdle != 2*time.Hour || cfg.Signup || cfg.DB != "from-env.db" || !cfg.SMTPInsecure {
		t.Fatalf("environment and flags: %+v", cfg)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.SessionMax != 12*time.Hour || cfg.SMTPAddr != "127.0.0.1:2525" {
		t.Fatalf("defaults: addr %q, session max %v, smtp %q", cfg.Addr, cfg.SessionMax, cfg.SMTPAddr)
	}
	cfg, err = settings(t, "--db", "before.db", "account", "create", "--name", "A", "--db", "after.db", "--signup=true")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DB != "after.db" || !cfg.Signup || cfg.SessionIdle != time.Hour {
		t.Fatalf("global flags after the command: db %q, signup %v, idle %v", cfg.DB, cfg.Signup, cfg.SessionIdle)
	}
	// Before the command alone, the flag still wins over the variable.
	if cfg, err = settings(t, "--db", "before.db", "migrate"); err != nil || cfg.DB != "before.db" {
		t.Fatalf("db %q %v", cfg.DB, err)
	}
}

// A variable that does not parse is refused, naming it, instead of being
// ignored: KEYDESK_SIGNUP=no used to leave open sign-up on.
func TestBadEnvironmentValueIsRefused(t *testing.T) {
	for name, value := range map[string]string{"KEYDESK_SIGNUP": "no", "KEYDESK_SESSION_IDLE": "30", "KEYDESK_SMTP_MAX_CONNS": "many"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			db := filepath.Join(t.TempDir(), "keydesk.db")
			code, out, stderr := runPlain(t, "", "--db", db, "migrate")
			if code != 2 || out != "" || !strings.Contains(stderr, name) {
				t.Fatalf("%s=%s: exit %d, stdout %q, stderr %q", name, value, code, out, stderr)
			}
		})
	}
}

// Each global flag's help names the variable it is read from.
func TestEveryFlagNamesItsVariable(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	(&config{}).register(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(f.Usage, "("+envVar(f.Name)+")") && !strings.Contains(f.Usage, "("+envVar(f.Name)+";") {
			t.Errorf("--%s: usage does not name %s: %q", f.Name, envVar(f.Name), f.Usage)
		}
	})
	if n < 28 {
		t.Fatalf("%d global flags", n)
	}
}

// envVar is the variable a global flag is read from (ff's mapping).
func envVar(flagName string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
