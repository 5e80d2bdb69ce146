package rules

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/steergate/steergate/backend"
)

// schemas compiles JSON schemas that requests carry (response_format,
// tool parameters) and keeps the last few hundred, since one request's
// candidates all check against the same schema.
type schemas struct {
	mu    sync.Mutex
	cache map[[32]byte]*compiled
}

type compiled struct {
	s   *jsonschema.Schema
	err error
}

const maxSchemas = 256

// noLoader refuses every $ref outside the schema: a client's schema must
// not make the gateway read files or fetch URLs.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema refers to %s; only references inside the schema are followed", url)
}

func (c *schemas) get(schema []byte) (*jsonschema.Schema, error) {
	key := sha256.Sum256(schema)
	c.mu.Lock()
	defer c.mu.Unlock()
	if got, ok := c.cache[key]; ok {
		return got.s, got.err
	}
	if c.cache == nil || len(c.cache) >= maxSchemas {
		c.cache = map[[32]byte]*compiled{}
	}
	s, err := compile(schema)
	c.cache[key] = &compiled{s, err}
	return s, err
}

func compile(schema []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, err
	}
	comp := jsonschema.NewCompiler()
	comp.UseLoader(noLoader{})
	if err := comp.AddResource("request.json", doc); err != nil {
		return nil, err
	}
	return comp.Compile("request.json")
}

// validJSON reports whether text is a JSON value that, when schema is
// given, follows it.
func (c *schemas) validJSON(text string, schema []byte) bool {
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(strings.TrimSpace(text)))
	if err != nil {
		return false
	}
	if len(schema) == 0 {
		_, isObject := inst.(map[string]any)
		return isObject
	}
	s, err := c.get(schema)
	if err != nil {
		return false // a schema that does not compile validates nothing
	}
	return s.Validate(inst) == nil
}

// toolCalls is the share of calls that name a tool the request defines
// and whose arguments are a JSON object following its parameters schema;
// 1 when the answer makes no call.
func (c *schemas) toolCalls(calls []backend.ToolCall, tools []backend.Tool) float32 {
	if len(calls) == 0 {
		return 1
	}
	valid := 0
	for _, call := range calls {
		if c.validCall(call, tools) == nil {
			valid++
		}
	}
	return float32(valid) / float32(len(calls))
}

func (c *schemas) validCall(call backend.ToolCall, tools []backend.Tool) error {
	for _, t := range tools {
		if t.Name != call.Name {
			continue
		}
		if !c.validJSON(call.Arguments, t.Parameters) {
			return errors.New("arguments do not follow the tool's parameters")
		}
		return nil
	}
	return fmt.Errorf("no tool %q", call.Name)
}
