package web

import (
	"bytes"
	"fmt"
	"io/fs"
	"regexp"
)

// The viewer's first picture waits for its script, and a page's script and
// stylesheet, fetched after the page, cost a fresh Chromium 50-100 ms on this
// kind of machine (BENCHMARKS.md). Pages are therefore served with their own
// /static/ stylesheets and scripts written into them, built once at start.
var (
	stylesheetTag = regexp.MustCompile(`<link rel="stylesheet" href="/static/([a-z0-9_-]+\.css)">`)
	scriptTag     = regexp.MustCompile(`<script src="/static/([a-z0-9_-]+\.js)"></script>`)
)

// inlinePage returns the page name from files with each
// <link rel="stylesheet" href="/static/x.css"> replaced by <style> with x.css
// and each <script src="/static/y.js"></script> by <script> with y.js. A
// file that would end its own element early (it holds "</style" or
// "</script", or "<!--") is an error: the page would break in the browser.
func inlinePage(files fs.FS, name string) ([]byte, error) {
	page, err := fs.ReadFile(files, name)
	if err != nil {
		return nil, fmt.Errorf("page %s: %w", name, err)
	}
	var failed error
	inline := func(tag *regexp.Regexp, element string) {
		page = tag.ReplaceAllFunc(page, func(m []byte) []byte {
			file := string(tag.FindSubmatch(m)[1])
			body, err := fs.ReadFile(files, file)
			if err != nil {
				failed = fmt.Errorf("page %s: %w", name, err)
				return m
			}
			// "</script" ends the element early; "<!--" in a script changes
			// how the browser looks for its end.
			for _, bad := range []string{"</" + element, "<!--"} {
				if bytes.Contains(bytes.ToLower(body), []byte(bad)) {
					failed = fmt.Errorf("page %s: %s holds %s and cannot be written into the page", name, file, bad)
					return m
				}
			}
			var b bytes.Buffer
			fmt.Fprintf(&b, "<%s>\n", element)
			b.Write(body)
			fmt.Fprintf(&b, "</%s>", element)
			return b.Bytes()
		})
	}
	inline(stylesheetTag, "style")
	inline(scriptTag, "script")
	if failed != nil {
		return nil, failed
	}
	return page, nil
}
