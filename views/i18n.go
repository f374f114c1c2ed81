package views

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// The message catalog: one TOML file per language under views/locales
// (en.toml, fr.toml, …), embedded in the binary. Adding a language is
// adding a file; README.md says how.
//
//go:embed locales/*.toml
var localeFiles embed.FS

// Catalog is the loaded message catalog.
type Catalog struct {
	bundle *i18n.Bundle
	// Languages are the catalog's languages, English first, in the order
	// the language menu lists them.
	Languages []Language
	matcher   language.Matcher
	// locs holds one localizer per language (they are safe for concurrent use).
	locs map[string]*Locale
	// English sentences written by models, web and handlers (validation
	// messages, error pages) and the catalog ID that translates each: an
	// exact table and, for sentences with values in them, patterns.
	english  map[string]string
	patterns []englishPattern
}

// Language is one language of the catalog.
type Language struct {
	Tag  string // BCP 47: "en", "fr"
	Name string // its own name: "English", "Français"
}

type englishPattern struct {
	re      *regexp.Regexp
	id      string
	names   []string
	literal int // length of its fixed text
	// plural: the message has plural forms chosen by its {{.Count}}.
	plural bool
	text   string // the English text, {{.Values}} and all
}

// Locale is one language's localizer, put in each request's context.
type Locale struct {
	Lang string
	loc  *i18n.Localizer
	cat  *Catalog
	// msgs are the language's messages without plural forms, compiled
	// once: T fills their {{.Values}} without going through a template
	// engine (pages ask for the same labels on every row).
	msgs map[string]compiled
	// counted caches plural messages without other values by count.
	counted sync.Map // countKey → string
}

type countKey struct {
	id string
	n  int
}

// compiled is a message split at its {{.Values}}: literal parts and the
// names of the values between them.
type compiled struct {
	parts  []string // len(names)+1 literal parts
	names  []string
	plural bool
}

var fieldRef = regexp.MustCompile(`\{\{\s*\.(\w+)\s*\}\}`)

func compile(text string) compiled {
	var c compiled
	last := 0
	for _, m := range fieldRef.FindAllStringSubmatchIndex(text, -1) {
		c.parts = append(c.parts, text[last:m[0]])
		c.names = append(c.names, text[m[2]:m[3]])
		last = m[1]
	}
	c.parts = append(c.parts, text[last:])
	return c
}

func (c compiled) fill(d Args) string {
	if len(c.names) == 0 {
		return c.parts[0]
	}
	var b strings.Builder
	for i, name := range c.names {
		b.WriteString(c.parts[i])
		switch v := d[name].(type) {
		case string:
			b.WriteString(v)
		case int:
			b.WriteString(strconv.Itoa(v))
		case nil:
			b.WriteString("<no value>")
		default:
			fmt.Fprint(&b, v)
		}
	}
	b.WriteString(c.parts[len(c.parts)-1])
	return b.String()
}

var defaultCatalog = mustLoadCatalog(localeFiles)

// Messages is the catalog built into the binary.
func Messages() *Catalog { return defaultCatalog }

func mustLoadCatalog(fsys fs.FS) *Catalog {
	c, err := LoadCatalog(fsys)
	if err != nil {
		panic(err)
	}
	return c
}

// LoadCatalog reads every locales/*.toml of fsys. English is the default
// language and must be there.
func LoadCatalog(fsys fs.FS) (*Catalog, error) {
	b := i18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	files, err := fs.Glob(fsys, "locales/*.toml")
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	c := &Catalog{bundle: b, locs: map[string]*Locale{}, english: map[string]string{}}
	var tags []language.Tag
	for _, f := range files {
		mf, err := b.LoadMessageFileFS(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("views: catalog %s: %w", f, err)
		}
		lang := strings.TrimSuffix(path.Base(f), ".toml")
		c.Languages = append(c.Languages, Language{Tag: lang})
		tags = append(tags, mf.Tag)
	}
	// English first: the matcher's default.
	sort.SliceStable(c.Languages, func(i, j int) bool { return c.Languages[i].Tag == "en" && c.Languages[j].Tag != "en" })
	sort.SliceStable(tags, func(i, j int) bool { return tags[i] == language.English && tags[j] != language.English })
	if len(tags) == 0 || tags[0] != language.English {
		return nil, fmt.Errorf("views: catalog has no locales/en.toml")
	}
	c.matcher = language.NewMatcher(tags)
	for i, l := range c.Languages {
		raw, err := fs.ReadFile(fsys, "locales/"+l.Tag+".toml")
		if err != nil {
			return nil, err
		}
		all, err := flatten(raw)
		if err != nil {
			return nil, fmt.Errorf("views: catalog %s: %w", l.Tag, err)
		}
		msgs := map[string]compiled{}
		for id, v := range all {
			switch v := v.(type) {
			case string:
				if strings.Contains(fieldRef.ReplaceAllString(v, ""), "{{") {
					return nil, fmt.Errorf("views: catalog %s: %s: only {{.Value}} may stand in a message", l.Tag, id)
				}
				msgs[id] = compile(v)
			default:
				msgs[id] = compiled{plural: true}
			}
		}
		loc := &Locale{Lang: l.Tag, loc: i18n.NewLocalizer(b, l.Tag), cat: c, msgs: msgs}
		c.locs[l.Tag] = loc
		c.Languages[i].Name = loc.T("language.name")
	}
	if err := c.indexEnglish(fsys); err != nil {
		return nil, err
	}
	return c, nil
}

// indexEnglish maps the English text of every "msg." message back to its
// ID, so a sentence a lower layer wrote in English can be shown in the
// reader's language.
func (c *Catalog) indexEnglish(fsys fs.FS) error {
	raw, err := fs.ReadFile(fsys, "locales/en.toml")
	if err != nil {
		return err
	}
	all, err := flatten(raw)
	if err != nil {
		return err
	}
	field := regexp.MustCompile(`\{\{\s*\.(\w+)\s*\}\}`)
	ids := make([]string, 0, len(all))
	for id := range all {
		if strings.HasPrefix(id, "msg.") {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		var texts []string
		plural := false
		switch v := all[id].(type) {
		case string:
			texts = []string{v}
		case map[string]any:
			// A sentence with a count: each English form is a pattern,
			// and {{.Count}} chooses the reader's form.
			plural = true
			for _, form := range []string{"one", "other"} {
				text, ok := v[form].(string)
				if !ok || !strings.Contains(text, "{{.Count}}") {
					return fmt.Errorf("views: catalog: %s: a [msg] message with plural forms needs one and other, both with {{.Count}}", id)
				}
				texts = append(texts, text)
			}
		default:
			return fmt.Errorf("views: catalog: %s must be a string or a table of plural forms", id)
		}
		for _, text := range texts {
			if !field.MatchString(text) {
				c.english[text] = id
				continue
			}
			var re strings.Builder
			var names []string
			re.WriteString("^")
			last := 0
			for _, m := range field.FindAllStringSubmatchIndex(text, -1) {
				re.WriteString(regexp.QuoteMeta(text[last:m[0]]))
				name := text[m[2]:m[3]]
				if plural && name == "Count" {
					re.WriteString("([0-9][0-9,]*)")
				} else {
					re.WriteString("(.*?)")
				}
				names = append(names, name)
				last = m[1]
			}
			re.WriteString(regexp.QuoteMeta(text[last:]))
			re.WriteString("$")
			c.patterns = append(c.patterns, englishPattern{re: regexp.MustCompile(re.String()), id: id, names: names,
				literal: len(field.ReplaceAllString(text, "")), plural: plural, text: text})
		}
	}
	// The most specific pattern (the most fixed text) is tried first.
	sort.SliceStable(c.patterns, func(i, j int) bool { return c.patterns[i].literal > c.patterns[j].literal })
	return nil
}

// pluralKeys are the keys of a message with plural forms (and its
// metadata), as go-i18n reads them.
var pluralKeys = map[string]bool{"zero": true, "one": true, "two": true, "few": true, "many": true, "other": true,
	"description": true, "hash": true, "id": true, "leftDelim": true, "rightDelim": true}

// flatten reads a catalog file into message ID → message (a string, or a
// table of plural forms); tables nest IDs: [keys] title → "keys.title".
func flatten(raw []byte) (map[string]any, error) {
	var tree map[string]any
	if err := toml.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			id := prefix + k
			sub, ok := v.(map[string]any)
			if !ok {
				out[id] = v
				continue
			}
			isMessage := len(sub) > 0
			for sk := range sub {
				if !pluralKeys[sk] {
					isMessage = false
				}
			}
			if isMessage {
				out[id] = sub
			} else {
				walk(id+".", sub)
			}
		}
	}
	walk("", tree)
	return out, nil
}

// Locale is the localizer for a language tag of the catalog; unknown
// tags get English.
func (c *Catalog) Locale(lang string) *Locale {
	if l, ok := c.locs[lang]; ok {
		return l
	}
	return c.locs["en"]
}

// Has reports whether lang is one of the catalog's languages.
func (c *Catalog) Has(lang string) bool {
	_, ok := c.locs[lang]
	return ok
}

// Match picks the catalog language for an Accept-Language header
// (English when nothing matches).
func (c *Catalog) Match(acceptLanguage string) string {
	if acceptLanguage == "" {
		return "en"
	}
	tag, _ := language.MatchStrings(c.matcher, acceptLanguage)
	base, _ := tag.Base()
	if c.Has(base.String()) {
		return base.String()
	}
	return "en"
}

// IDs lists the message IDs of one language's file (for the tests).
func (c *Catalog) IDs(lang string) ([]string, error) {
	raw, err := fs.ReadFile(localeFiles, "locales/"+lang+".toml")
	if err != nil {
		return nil, err
	}
	all, err := flatten(raw)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids, nil
}

// Args are the values a message's template reads: {{.Name}}.
type Args = map[string]any

// T is the message id in this language, with data filled in. A message
// missing from the language falls back to English; a message missing
// everywhere shows its ID (the catalog test fails long before).
func (l *Locale) T(id string, data ...Args) string {
	var d Args
	if len(data) > 0 {
		d = data[0]
	}
	m, ok := l.msgs[id]
	if !ok && l.Lang != "en" {
		return l.cat.Locale("en").T(id, data...)
	}
	if !ok || m.plural {
		return id
	}
	return m.fill(d)
}

// TN is a message with plural forms chosen by n under the language's CLDR
// rules ("1 sous-compte", "2 sous-comptes"). {{.Count}} is n formatted
// for the language.
func (l *Locale) TN(id string, n int, data ...Args) string {
	if len(data) == 0 {
		k := countKey{id, n}
		if s, ok := l.counted.Load(k); ok {
			return s.(string)
		}
		s := l.tn(id, n)
		l.counted.Store(k, s)
		return s
	}
	return l.tn(id, n, data...)
}

func (l *Locale) tn(id string, n int, data ...Args) string {
	d := Args{}
	if len(data) > 0 {
		for k, v := range data[0] {
			d[k] = v
		}
	}
	d["Count"] = l.Number(n)
	s, err := l.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: d, PluralCount: n})
	if err != nil {
		return id
	}
	return s
}

// Msg shows an English sentence from models, web or handlers (a
// validation message, an error page's text) in this language. Sentences
// the catalog does not know are shown as they are.
func (l *Locale) Msg(english string) string {
	if english == "" {
		return ""
	}
	if id, ok := l.cat.english[english]; ok {
		if l.Lang == "en" {
			return english
		}
		return l.T(id)
	}
	for _, p := range l.cat.patterns {
		m := p.re.FindStringSubmatch(english)
		if m == nil {
			continue
		}
		if l.Lang == "en" && !p.plural {
			return english
		}
		d := Args{}
		count := 0
		for i, name := range p.names {
			v := m[i+1]
			if p.plural && name == "Count" {
				count, _ = strconv.Atoi(strings.ReplaceAll(v, ",", ""))
				continue
			}
			if n, err := strconv.Atoi(v); err == nil {
				d[name] = l.Number(n)
				continue
			}
			// A value may itself be a known sentence (a finding inside a
			// finding): it is translated too, keeping its leading space.
			lead := v[:len(v)-len(strings.TrimLeft(v, " "))]
			if t := strings.TrimSpace(v); t != "" && t != english && l.cat.KnowsEnglish(t) {
				v = lead + l.Msg(t)
			}
			d[name] = v
		}
		if p.plural {
			// The form follows the count in every language: a lower
			// layer's "1 minutes" reads "1 minute".
			return l.TN(p.id, count, d)
		}
		return l.T(p.id, d)
	}
	return english
}

// KnowsEnglish reports whether an English sentence from a lower layer has
// a catalog entry (for the tests).
func (c *Catalog) KnowsEnglish(english string) bool {
	if _, ok := c.english[english]; ok {
		return true
	}
	for _, p := range c.patterns {
		if p.re.MatchString(english) {
			return true
		}
	}
	return false
}

// Number formats an integer with the language's digit grouping: "48,211",
// "48 211" (a narrow no-break space in French).
func (l *Locale) Number(n int) string {
	return groupDigits(strconv.FormatInt(int64(n), 10), l.T("number.group"))
}

// Number64 is Number for counts kept as int64 or uint64.
func (l *Locale) Number64(n int64) string {
	return groupDigits(strconv.FormatInt(n, 10), l.T("number.group"))
}

func groupDigits(s, sep string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(sep)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Date is a day in the language: "27 Nov 2026", "27 nov. 2026".
func (l *Locale) Date(t time.Time) string {
	return l.T("date.day", Args{"Day": t.Day(), "Month": l.month(t.Month()), "Year": t.Year()})
}

// DayMonthTime is a deadline within the coming days: "4 Dec 04:00",
// "4 déc. 04:00".
func (l *Locale) DayMonthTime(t time.Time) string {
	return l.T("date.day_month_time", Args{"Day": t.Day(), "Month": l.month(t.Month()), "Time": t.Format("15:04")})
}

func (l *Locale) month(m time.Month) string {
	names := strings.Split(l.T("date.months_short"), ",")
	if len(names) != 12 {
		return m.String()[:3]
	}
	return strings.TrimSpace(names[m-1])
}

type localeKey struct{}

// WithLocale stores the reader's language for the views.
func WithLocale(ctx context.Context, l *Locale) context.Context {
	return context.WithValue(ctx, localeKey{}, l)
}

// Loc is the request's language (English when none was chosen).
func Loc(ctx context.Context) *Locale {
	if l, ok := ctx.Value(localeKey{}).(*Locale); ok && l != nil {
		return l
	}
	return defaultCatalog.Locale("en")
}

// Lang is the request's language tag, for <html lang>.
func Lang(ctx context.Context) string { return Loc(ctx).Lang }

// T is a catalog message in the request's language.
func T(ctx context.Context, id string, data ...Args) string { return Loc(ctx).T(id, data...) }

// TN is a plural catalog message in the request's language.
func TN(ctx context.Context, id string, n int, data ...Args) string {
	return Loc(ctx).TN(id, n, data...)
}

// Msg is an English sentence from a lower layer in the request's language.
func Msg(ctx context.Context, english string) string { return Loc(ctx).Msg(english) }

// Num is an integer formatted for the request's language.
func Num(ctx context.Context, n int) string { return Loc(ctx).Number(n) }

func pluralConfig(id string, n int) *i18n.LocalizeConfig {
	return &i18n.LocalizeConfig{MessageID: id, PluralCount: n, TemplateData: Args{"Count": n}}
}

// Texts are the raw texts of one language's messages, by ID (a plural
// message gives each of its forms, under "id.form"), for the tests.
func (c *Catalog) Texts(lang string) (map[string]string, error) {
	raw, err := fs.ReadFile(localeFiles, "locales/"+lang+".toml")
	if err != nil {
		return nil, err
	}
	all, err := flatten(raw)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for id, v := range all {
		switch v := v.(type) {
		case string:
			out[id] = v
		case map[string]any:
			for form, s := range v {
				if s, ok := s.(string); ok && form != "description" {
					out[id+"."+form] = s
				}
			}
		}
	}
	return out, nil
}
