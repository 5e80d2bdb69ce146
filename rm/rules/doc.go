// Package rules owns reward objectives that need no model: verbosity
// (length in tokens), repetition (the ratio of repeated word n-grams),
// format (valid JSON when the request asks for JSON, or a regular
// expression), and configurable keyword objectives (the share of their
// patterns a response contains). They make steering work with nothing else
// installed.
package rules
