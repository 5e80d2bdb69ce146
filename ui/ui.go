package ui

import (
	"embed"
	"io/fs"
	"mime"
	"path"
)

//go:embed assets
var assets embed.FS

// Asset returns a file of the dashboard by its name under /ui/ ("" is the
// page) and its content type; ok is false for a name it lacks.
func Asset(name string) (body []byte, contentType string, ok bool) {
	if name == "" {
		name = "index.html"
	}
	if !fs.ValidPath(name) {
		return nil, "", false
	}
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		return nil, "", false
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return b, ct, true
}
