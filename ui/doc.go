// Package ui holds the dashboard's assets, embedded in the binary so that
// the page works offline and with nothing installed: one HTML page, its
// script and its style sheet, written without a build step or a library
// (charts are SVG drawn by the script).
package ui
