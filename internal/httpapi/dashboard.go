package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"sync"
	"time"
)

// uiFiles are the dashboard's assets: one page, one script, one stylesheet,
// written by hand (no build step, no third-party code, nothing fetched from
// elsewhere). The page holds no data; the script reads the API with the
// token the user gives it.
//
//go:embed ui
var uiFiles embed.FS

// uiAsset is one embedded file ready to serve.
type uiAsset struct {
	body        []byte
	contentType string
	etag        string
}

// uiAssets reads the embedded files once, with their content types and
// ETags (a digest of the content, so a new build is fetched at once).
var uiAssets = sync.OnceValue(func() map[string]uiAsset {
	out := map[string]uiAsset{}
	_ = fs.WalkDir(uiFiles, "ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := uiFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		out[path.Base(p)] = uiAsset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	return out
})

// dashboardCSP keeps the page to its own origin: no inline script, no
// third-party source, no framing.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboard serves GET / : the dashboard page.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) error {
	return serveUIAsset(w, r, "index.html")
}

// dashboardAsset serves GET /ui/{file}: the page's script and stylesheet.
func (s *Server) dashboardAsset(w http.ResponseWriter, r *http.Request) error {
	return serveUIAsset(w, r, r.PathValue("file"))
}

func serveUIAsset(w http.ResponseWriter, r *http.Request, name string) error {
	a, ok := uiAssets()[name]
	if !ok {
		return Errorf(CodeNotFound, "no dashboard asset %q", name)
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	// no-cache: the browser may keep a copy but asks (If-None-Match) first,
	// so an upgrade never runs an old script against a new API.
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
	return nil
}
