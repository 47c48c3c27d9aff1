// Package static holds the dashboard's shipped assets, embedded in the binary and served
// under content-hash fingerprinted URLs (css/app.1a2b3c4d5e.css) with far-future cache
// headers: a new build changes the URL, so browsers never keep a stale file.
//
// js/htmx.min.js is htmx 2.0.11, vendored unmodified from the npm package htmx.org@2.0.11
// (dist/htmx.min.js, sha256 d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717).
// To upgrade: npm pack htmx.org@2.x.y, copy dist/htmx.min.js, update this comment.
package static

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed css js img
var files embed.FS

// HTMXVersion is the vendored htmx release.
const HTMXVersion = "2.0.11"

// Prefix is the URL path under which assets are served.
const Prefix = "/static/"

type asset struct {
	body  []byte
	hash  string // first 10 hex digits of the SHA-256 of body
	ctype string
}

var assets = func() map[string]asset {
	m := map[string]asset{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		m[p] = asset{body: b, hash: hex.EncodeToString(sum[:])[:10], ctype: ct}
		return nil
	})
	if err != nil {
		panic("static: " + err.Error())
	}
	return m
}()

// URL returns the fingerprinted URL of an asset ("css/app.css" →
// "/static/css/app.1a2b3c4d5e.css"). It panics on an unknown name: a typo in a template
// should fail the first test that renders it.
func URL(name string) string {
	a, ok := assets[name]
	if !ok {
		panic("static: no asset " + name)
	}
	ext := path.Ext(name)
	return Prefix + strings.TrimSuffix(name, ext) + "." + a.hash + ext
}

// split undoes URL: "css/app.1a2b3c4d5e.css" → ("css/app.css", "1a2b3c4d5e").
func split(p string) (name, hash string) {
	ext := path.Ext(p)
	base := strings.TrimSuffix(p, ext)
	i := strings.LastIndexByte(base, '.')
	if i < 0 {
		return p, ""
	}
	return base[:i] + ext, base[i+1:]
}

var startedAt = time.Now()

// Handler serves assets under Prefix. A request with the current fingerprint is cached
// for a year as immutable; one with an old fingerprint (a page rendered by an older
// build during a rolling deploy) gets the current file, revalidated every time.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, hash := split(strings.TrimPrefix(r.URL.Path, Prefix))
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		if hash == a.hash {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("ETag", `"`+a.hash+`"`)
		http.ServeContent(w, r, name, startedAt, bytes.NewReader(a.body))
	})
}
