package web

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

func TestInlinePageWritesStylesheetsAndScriptsIn(t *testing.T) {
	files := fstest.MapFS{
		"page.html": {Data: []byte(`<head><link rel="stylesheet" href="/static/a.css"></head>` +
			`<body><p>x</p><script src="/static/b.js"></script><script src="/static/b.js"></script></body>`)},
		"a.css": {Data: []byte("p { color: red }")},
		"b.js":  {Data: []byte(`if (1 < 2) console.log("</p>");`)},
	}
	got, err := inlinePage(files, "page.html")
	if err != nil {
		t.Fatal(err)
	}
	want := "<head><style>\np { color: red }</style></head><body><p>x</p>" +
		"<script>\nif (1 < 2) console.log(\"</p>\");</script><script>\nif (1 < 2) console.log(\"</p>\");</script></body>"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestInlinePageRefusesWhatWouldBreakThePage(t *testing.T) {
	for name, files := range map[string]fstest.MapFS{
		"script ends early": {
			"page.html": {Data: []byte(`<script src="/static/b.js"></script>`)},
			"b.js":      {Data: []byte(`const s = "</SCRIPT>";`)},
		},
		"style ends early": {
			"page.html": {Data: []byte(`<link rel="stylesheet" href="/static/a.css">`)},
			"a.css":     {Data: []byte(`/* </style> */`)},
		},
		"comment opener in a script": {
			"page.html": {Data: []byte(`<script src="/static/b.js"></script>`)},
			"b.js":      {Data: []byte(`const s = "<!--";`)},
		},
		"missing file": {
			"page.html": {Data: []byte(`<script src="/static/gone.js"></script>`)},
		},
		"missing page": {},
	} {
		t.Run(name, func(t *testing.T) {
			if page, err := inlinePage(files, "page.html"); err == nil {
				t.Fatalf("no error; page:\n%s", page)
			} else if !strings.Contains(err.Error(), "page.html") {
				t.Fatalf("error does not name the page: %v", err)
			}
		})
	}
}

// The pages the daemon serves: every local stylesheet and script is in the
// page, none is left to fetch.
func TestServedPagesHaveNothingLeftToFetch(t *testing.T) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"index.html", "console.html", "replay.html"} {
		page, err := inlinePage(sub, name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(page), `href="/static/`) || strings.Contains(string(page), `src="/static/`) {
			t.Errorf("%s still refers to a /static/ file:\n%s", name, page)
		}
		if !strings.Contains(string(page), "<style>") || !strings.Contains(string(page), "<script>") {
			t.Errorf("%s has no inline style or script", name)
		}
	}
}
