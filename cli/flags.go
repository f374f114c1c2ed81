package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// envPrefix names the environment variables: --session-keys is read from
// KEYDESK_SESSION_KEYS when it is not given.
const envPrefix = "KEYDESK"

// storeFlags are the global flags a command that opens the database uses;
// its --help lists them beside its own.
var storeFlags = []string{"db", "log-level"}

// invocation is one run of a command: the settings, the global flag set
// they were parsed with, the command's arguments and its streams.
type invocation struct {
	cmd            *command
	cfg            *config
	globals        *flag.FlagSet
	args           []string
	stdin          io.Reader
	stdout, stderr io.Writer
	opts           options
}

// parseSettings reads the global flags in args (up to the command name) and
// the environment; the flag set's Args are the command and its arguments.
func parseSettings(args []string, stderr io.Writer) (*config, *flag.FlagSet, error) {
	cfg := &config{}
	top := flag.NewFlagSet("keydesk", flag.ContinueOnError)
	top.SetOutput(stderr)
	cfg.register(top)
	top.Usage = func() { topUsage(stderr, top) }
	return cfg, top, parseGlobal(top, args, stderr)
}

// parseGlobal parses the global flags in args, up to the command name, then
// sets each one not given from its KEYDESK_* variable (when set and not
// empty). A variable that does not parse is an error naming it. --help
// prints the usage before any variable is read, and shows each flag's
// built-in default, never a value from the environment (a key).
func parseGlobal(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	usagePrinted := false
	usage := fs.Usage
	fs.Usage = func() { usagePrinted = true; usage() }
	err := ff.Parse(fs, args, ff.WithEnvVarPrefix(envPrefix))
	if err != nil && !usagePrinted {
		// The flag package reports command-line errors itself.
		fmt.Fprintf(stderr, "keydesk: %v\n", err)
	}
	return err
}

// parse parses the command's own flags (declared by own, if any) and the
// global ones, which may also follow the command name: they share the
// values parseGlobal set, so a global flag given here wins over the one
// before the command and over the environment. --help lists the command's
// own flags and storeFlags (serve: every global flag).
func (in *invocation) parse(own func(fs *flag.FlagSet)) error {
	name := in.cmd.name
	fs := flag.NewFlagSet("keydesk "+name, flag.ContinueOnError)
	fs.SetOutput(in.stderr)
	if own != nil {
		own(fs)
	}
	var shown []string
	fs.VisitAll(func(f *flag.Flag) { shown = append(shown, f.Name) })
	in.globals.VisitAll(func(g *flag.Flag) {
		fs.Var(g.Value, g.Name, g.Usage)
		// The built-in default, never the value parsed so far (a key).
		fs.Lookup(g.Name).DefValue = g.DefValue
	})
	heading := "Flags:"
	if name == "serve" {
		shown, heading = nil, "Flags (each also read from the environment variable in brackets):"
		fs.VisitAll(func(f *flag.Flag) { shown = append(shown, f.Name) })
	} else {
		shown = append(shown, storeFlags...)
	}
	fs.Usage = func() {
		fmt.Fprintf(in.stderr, "Usage:\n  keydesk %s [flags]\n%s\n\n%s\n", name, wrap(in.cmd.summary, 6, 80), heading)
		printFlags(in.stderr, fs, shown)
		if name != "serve" {
			fmt.Fprintln(in.stderr, "\nThe other global flags (keydesk --help) are accepted too.")
		}
	}
	if err := fs.Parse(in.args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// printFlags prints the flags of fs named in names, as PrintDefaults does.
func printFlags(w io.Writer, fs *flag.FlagSet, names []string) {
	show := flag.NewFlagSet("", flag.ContinueOnError)
	show.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(names, f.Name) {
			show.Var(f.Value, f.Name, f.Usage)
			show.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	show.PrintDefaults()
}

// wrap breaks text into lines of at most width columns, each indented.
func wrap(text string, indent, width int) string {
	var b strings.Builder
	pad := strings.Repeat(" ", indent)
	line := pad
	for _, word := range strings.Fields(text) {
		if len(line) > indent && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = pad
		}
		if len(line) > indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

// isHelp reports whether err is a request for help (-h, -help, --help).
func isHelp(err error) bool { return errors.Is(err, flag.ErrHelp) }
