// Package openai owns the OpenAI wire format: request and response types for
// chat completions, completions, models and errors, and pure conversions
// between them and the backend types. The gateway decodes with it, the
// OpenAI-compatible backend adapter encodes with it, and the reference server
// speaks it.
package openai
