package views

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// apiOnly are the files whose sentences only the Mailjet API (REST and
// Send API), the command line or the operator's metrics say: they stay
// in English.
var apiOnly = map[string]bool{
	"../models/rest.go": true, "../models/send.go": true, "../models/apiauth.go": true, "../models/outbound.go": true,
	"../handlers/rest.go": true, "../handlers/send.go": true, "../web/apiauth.go": true,
	"../models/anchor.go": true, "../models/auditchain.go": true, // log lines and CLI reports
	"../web/metrics.go": true, // Prometheus help texts, for operators
}

var sqlText = regexp.MustCompile(`^(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|COALESCE|NOT)[ (]`)

// Every sentence that models, handlers and web write for a person (form
// errors, notices, error pages) has an entry under [msg], so the console
// shows it in the reader's language. Log messages, wrapped errors and the
// API's own messages are not for the console and are skipped.
func TestEveryConsoleSentenceIsInTheCatalog(t *testing.T) {
	sentence := regexp.MustCompile(`^[A-Z][^\n]*[a-z][^\n]* [^\n]*[.?!)]$`)
	verb := regexp.MustCompile(`%[-+# 0-9.]*[dsvq]`)
	var files []string
	for _, dir := range []string{"../models", "../handlers", "../web"} {
		m, _ := filepath.Glob(dir + "/*.go")
		for _, f := range m {
			if !strings.HasSuffix(f, "_test.go") && !strings.HasSuffix(f, "_templ.go") && !apiOnly[f] {
				files = append(files, f)
			}
		}
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Literals inside calls that never reach a page.
		skip := map[*ast.BasicLit]bool{}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			name := ""
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				name = fn.Sel.Name
				if x, ok := fn.X.(*ast.Ident); ok {
					name = x.Name + "." + name
				}
			case *ast.Ident:
				name = fn.Name
			}
			switch {
			case name == "fmt.Errorf", name == "errors.New", strings.HasSuffix(name, "Error") && !strings.HasPrefix(name, "echo."),
				strings.HasSuffix(name, "Debug"), strings.HasSuffix(name, "Info"), strings.HasSuffix(name, "Warn"),
				strings.HasSuffix(name, "LogAttrs"), name == "wrapOp", name == "wrapOpNil", name == "MailjetError", name == "panic":
				ast.Inspect(call, func(n ast.Node) bool {
					if lit, ok := n.(*ast.BasicLit); ok {
						skip[lit] = true
					}
					return true
				})
			}
			return true
		})
		check := func(pos token.Pos, s string, shape *regexp.Regexp) {
			if !sentence.MatchString(s) || sqlText.MatchString(s) {
				return
			}
			s = verb.ReplaceAllString(s, "12")
			if !Messages().KnowsEnglish(s) && (shape == nil || !Messages().knowsShape(shape)) {
				t.Errorf("%s: %q is shown in the console but has no [msg] entry in the catalog", fset.Position(pos), s)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			// A sentence glued from pieces ("Try again in " + n + "
			// minutes.") is checked whole, its values standing as 12.
			if bin, ok := n.(*ast.BinaryExpr); ok && bin.Op == token.ADD {
				var parts []ast.Expr
				var flat func(e ast.Expr)
				flat = func(e ast.Expr) {
					if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
						flat(b.X)
						flat(b.Y)
						return
					}
					parts = append(parts, e)
				}
				flat(bin)
				// shape matches the catalog's sentences the pieces can
				// make: "A " + what + " is required." is known when "A
				// reason is required." is.
				var b, shape strings.Builder
				shape.WriteString("^")
				literal := false
				for _, e := range parts {
					lit, ok := e.(*ast.BasicLit)
					switch {
					case ok && lit.Kind == token.STRING && skip[lit]:
						return false
					case ok && lit.Kind == token.STRING:
						s, err := strconv.Unquote(lit.Value)
						if err != nil {
							return false
						}
						b.WriteString(s)
						for i, piece := range verb.Split(s, -1) {
							if i > 0 {
								shape.WriteString(".+")
							}
							shape.WriteString(regexp.QuoteMeta(piece))
						}
						literal = true
					default:
						b.WriteString("12")
						shape.WriteString(".+")
					}
				}
				if literal {
					shape.WriteString("$")
					check(bin.Pos(), b.String(), regexp.MustCompile(shape.String()))
				}
				return false
			}
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || skip[lit] {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil {
				check(lit.Pos(), s, nil)
			}
			return true
		})
	}
}

// knowsShape reports whether one of the catalog's English sentences (its
// text, with {{.Values}} as they are) matches shape.
func (c *Catalog) knowsShape(shape *regexp.Regexp) bool {
	for s := range c.english {
		if shape.MatchString(s) {
			return true
		}
	}
	for _, p := range c.patterns {
		if shape.MatchString(p.text) {
			return true
		}
	}
	return false
}
