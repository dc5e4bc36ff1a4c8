package doclinks

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/berth-dev/berth/internal/testenv"
)

// TestDocLinks checks every relative link and anchor of README.md and
// docs/**/*.md. External http(s) links are not fetched.
func TestDocLinks(t *testing.T) {
	root := testenv.RepoRoot()
	files := markdownFiles(t, root)
	if len(files) < 2 {
		t.Fatalf("found %d Markdown files under %s, want README.md and docs/", len(files), root)
	}
	c := newChecker(root)
	checked := 0
	for _, file := range files {
		problems, n := c.checkFile(file)
		checked += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found: the parser is broken")
	}
	t.Logf("%d relative links in %d files", checked, len(files))
}

// markdownFiles are README.md and every .md file under docs/.
func markdownFiles(t *testing.T, root string) []string {
	t.Helper()
	files := []string{filepath.Join(root, "README.md")}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking docs/: %v", err)
	}
	sort.Strings(files)
	return files
}

// checker resolves links of files under root, caching each target's
// anchors.
type checker struct {
	root    string
	anchors map[string]map[string]bool
}

func newChecker(root string) *checker {
	return &checker{root: root, anchors: map[string]map[string]bool{}}
}

// checkFile returns one message per broken link of file and how many
// relative links it checked.
func (c *checker) checkFile(file string) ([]string, int) {
	src, err := os.ReadFile(file)
	if err != nil {
		return []string{err.Error()}, 0
	}
	doc := parse(string(src))
	rel, _ := filepath.Rel(c.root, file)
	var problems []string
	n := 0
	for _, l := range doc.links {
		if external(l.target) {
			continue
		}
		n++
		if err := c.resolve(file, l.target); err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: link %q: %v", filepath.ToSlash(rel), l.line, l.target, err))
		}
	}
	return problems, n
}

var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// external reports whether a link leaves the repository on purpose: a web
// address or a mail address. Any other scheme (file:, …) is checked, and
// refused by resolve.
func external(target string) bool {
	lower := strings.ToLower(target)
	return strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "mailto:")
}

// resolve checks one link of the Markdown file from: the file or directory
// it names exists inside the repository, and its fragment, if any, is an
// anchor of that Markdown file.
func (c *checker) resolve(from, target string) error {
	if scheme.MatchString(target) {
		return fmt.Errorf("not a relative link: only http(s) and mailto links may leave the repository")
	}
	path, fragment, _ := strings.Cut(target, "#")
	path, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Errorf("bad escape: %v", err)
	}
	if strings.HasPrefix(path, "/") {
		return fmt.Errorf("absolute path: write it relative to %s", filepath.Base(from))
	}
	dest := from
	if path != "" {
		dest = filepath.Join(filepath.Dir(from), filepath.FromSlash(path))
	}
	if r, err := filepath.Rel(c.root, dest); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return fmt.Errorf("points outside the repository")
	}
	info, err := os.Stat(dest)
	if err != nil {
		return fmt.Errorf("no such file or directory")
	}
	if fragment == "" {
		return nil
	}
	if info.IsDir() || !strings.HasSuffix(dest, ".md") {
		return fmt.Errorf("anchor #%s on %s, which is not a Markdown file", fragment, path)
	}
	anchor, err := url.PathUnescape(fragment)
	if err != nil {
		return fmt.Errorf("bad escape in anchor: %v", err)
	}
	anchors, err := c.anchorsOf(dest)
	if err != nil {
		return err
	}
	if !anchors[anchor] {
		name := path
		if name == "" {
			name = "this file"
		}
		return fmt.Errorf("no heading with anchor #%s in %s", anchor, name)
	}
	return nil
}

func (c *checker) anchorsOf(file string) (map[string]bool, error) {
	if a, ok := c.anchors[file]; ok {
		return a, nil
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	a := map[string]bool{}
	for _, s := range parse(string(src)).anchors {
		a[s] = true
	}
	c.anchors[file] = a
	return a, nil
}

// link is a link target and the line it is on.
type link struct {
	line   int
	target string
}

// document is what the checks need of a Markdown file.
type document struct {
	anchors []string // heading slugs (duplicates suffixed -1, -2, … as GitHub does) and HTML ids
	links   []link
}

var (
	atxHeading = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	fenceOpen  = regexp.MustCompile("^[ \t]*(`{3,}|~{3,})")
	// inline links and images: [text](target "title"), ![alt](<target>)
	inlineLink = regexp.MustCompile(`!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)`)
	// reference definitions: [label]: target
	refDef   = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	htmlHref = regexp.MustCompile(`(?i)<a\s[^>]*href="([^"]*)"`)
	htmlID   = regexp.MustCompile(`(?i)<[a-z][a-z0-9]*\s[^>]*(?:id|name)="([^"]*)"`)
)

// parse reads headings and links, leaving out fenced code blocks and code
// spans, where nothing is a heading or a link.
func parse(src string) document {
	var doc document
	seen := map[string]bool{}
	addAnchor := func(s string) {
		a := s
		for i := 1; seen[a]; i++ {
			a = fmt.Sprintf("%s-%d", s, i)
		}
		seen[a] = true
		doc.anchors = append(doc.anchors, a)
	}
	fence := ""
	for i, line := range strings.Split(src, "\n") {
		if fence != "" {
			if m := fenceOpen.FindStringSubmatch(line); m != nil && m[1][0] == fence[0] && len(m[1]) >= len(fence) && strings.TrimSpace(line) == m[1] {
				fence = ""
			}
			continue
		}
		if m := fenceOpen.FindStringSubmatch(line); m != nil {
			fence = m[1]
			continue
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			addAnchor(Slug(m[2]))
		}
		text := stripCodeSpans(line)
		for _, m := range htmlID.FindAllStringSubmatch(text, -1) {
			seen[m[1]] = true
			doc.anchors = append(doc.anchors, m[1])
		}
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		if m := refDef.FindStringSubmatch(text); m != nil {
			targets = append(targets, m[1])
		}
		for _, m := range htmlHref.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, t := range targets {
			t = strings.TrimSuffix(strings.TrimPrefix(t, "<"), ">")
			doc.links = append(doc.links, link{line: i + 1, target: t})
		}
	}
	return doc
}

// stripCodeSpans blanks `code spans` (a run of n backticks up to the next
// run of exactly n), so that their text is neither a link nor markup.
func stripCodeSpans(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '`' {
			b.WriteByte(s[i])
			i++
			continue
		}
		n := 0
		for i+n < len(s) && s[i+n] == '`' {
			n++
		}
		end := closingRun(s, i+n, n)
		if end < 0 {
			b.WriteString(s[i : i+n])
			i += n
			continue
		}
		b.WriteString(strings.Repeat(" ", end+n-i))
		i = end + n
	}
	return b.String()
}

// closingRun is the index of the next run of exactly n backticks from i, or -1.
func closingRun(s string, i, n int) int {
	for i < len(s) {
		if s[i] != '`' {
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '`' {
			j++
		}
		if j-i == n {
			return i
		}
		i = j
	}
	return -1
}

var (
	inlineMarkup = regexp.MustCompile(`!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)`)
	htmlTag      = regexp.MustCompile(`</?[A-Za-z][^>]*>`)
)

// Slug is the anchor GitHub gives a heading: the heading's text as
// rendered (code spans, links and emphasis reduced to their text), lower
// case, every character that is not a letter, a digit, '-', '_' or a space
// dropped, and each space turned into '-'.
func Slug(heading string) string {
	text := inlineMarkup.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	text = strings.NewReplacer("`", "", "*", "", `\`, "").Replace(text)
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for _, tc := range []struct{ heading, want string }{
		{"Quick start", "quick-start"},
		{"Where placement reads its metrics: embedded or remote Prometheus", "where-placement-reads-its-metrics-embedded-or-remote-prometheus"},
		{"Organization quotas: usage, compliance, can-deploy, server limit", "organization-quotas-usage-compliance-can-deploy-server-limit"},
		{"Containers & applications", "containers--applications"},
		{"`GET /api/v1/organizations/{org}`", "get-apiv1organizationsorg"},
		{"POST /api/v1/placements with `organization`", "post-apiv1placements-with-organization"},
		{"BerthContainerOOMKilled", "berthcontaineroomkilled"},
		{"Fit: can this server take it?", "fit-can-this-server-take-it"},
		{"berth_build_last_* and [links](x.md)", "berth_build_last_-and-links"},
		{"Collector options (names and defaults are node_exporter 1.5's)", "collector-options-names-and-defaults-are-node_exporter-15s"},
		{"Placement performance: Berth's decision vs the naive per-server strategy", "placement-performance-berths-decision-vs-the-naive-per-server-strategy"},
		{"Against the targets (1000 servers)", "against-the-targets-1000-servers"},
		{"**Bold** — em dash", "bold--em-dash"},
		{"Écoute ≥ 2", "écoute--2"},
	} {
		if got := Slug(tc.heading); got != tc.want {
			t.Errorf("Slug(%q) = %q, want %q", tc.heading, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	doc := parse("# Title\n\n## Metrics\n\n```sh\n# not a heading [no](link.md)\n```\n\n  ~~~\n## Not either\n  ~~~\n## Metrics\n" +
		"See [a](a.md), `[code](code.md)`, ![img](<img.png> \"t\") and <a href=\"h.md#x\">h</a>.\n[ref]: r.md\n<a id=\"custom\"></a>\n### `GET /x` ###\n")
	if want := []string{"title", "metrics", "metrics-1", "custom", "get-x"}; fmt.Sprint(doc.anchors) != fmt.Sprint(want) {
		t.Errorf("anchors = %v, want %v", doc.anchors, want)
	}
	var got []string
	for _, l := range doc.links {
		got = append(got, fmt.Sprintf("%d:%s", l.line, l.target))
	}
	if want := []string{"13:a.md", "13:img.png", "13:h.md#x", "14:r.md"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("links = %v, want %v", got, want)
	}
}

// TestResolve runs the resolver over a small tree with good and broken
// links: the test above would catch each broken one.
func TestResolve(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("README.md", "# Berth\n\n## Quick start\n\n## Quick start\n")
	write("docs/placement/api.md", "# API\n\n## Errors\n\n### `GET /api/v1/servers/{server}`\n")
	write("docs/rules.md", "# Rules\n\n### BerthServerDown\n")
	write("rules/alerts.rules.yml", "groups: []\n")
	from := filepath.Join(root, "docs", "placement", "api.md")
	c := newChecker(root)
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"../rules.md", true},
		{"../rules.md#berthserverdown", true},
		{"../rules.md#BerthServerDown", false}, // anchors are lower case
		{"../rules.md#berthserverup", false},
		{"../../README.md#quick-start-1", true},
		{"../../README.md#quick-start-2", false},
		{"#errors", true},
		{"#get-apiv1serversserver", true},
		{"#no-such-section", false},
		{"../../rules/alerts.rules.yml", true},
		{"../../rules/", true},
		{"../../rules/alerts.rules.yml#L3", false}, // anchors only into Markdown
		{"../missing.md", false},
		{"../design.md", false},
		{"../../../design.md", false}, // outside the repository
		{"/docs/rules.md", false},
		{"file:///etc/passwd", false},
		{"../rules%2Emd", true},
	} {
		err := c.resolve(from, tc.target)
		if (err == nil) != tc.ok {
			t.Errorf("resolve(%q) = %v, want ok=%v", tc.target, err, tc.ok)
		}
	}
	if !external("https://prometheus.io/docs/") || external("docs/x.md") || external("file:///x") {
		t.Error("external: only http(s) and mailto links are external")
	}

	// A file with a broken link is reported with its line.
	write("docs/broken.md", "# Broken\n\nSee [the runbook](rules.md#berthserverdown) and [design](design.md).\n")
	problems, n := c.checkFile(filepath.Join(root, "docs", "broken.md"))
	if n != 2 || len(problems) != 1 || !strings.HasPrefix(problems[0], "docs/broken.md:3: link \"design.md\"") {
		t.Errorf("checkFile = %q, %d links; want one problem on line 3 of 2 links", problems, n)
	}
}
